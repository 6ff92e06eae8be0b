"""The command line that the dataset generators share
(``tools/dataset_converters/synthvoc.py`` and ``synthnet.py``)."""
import argparse
import sys
import time
from typing import Callable, Dict, Optional, Sequence, Tuple


def generator_main(generate: Callable[..., Dict[str, int]],
                   *,
                   prog: str,
                   description: str,
                   counts: Sequence[Tuple[str, int, str]],
                   size: Tuple[int, int],
                   summary: str,
                   argv: Optional[Sequence[str]] = None) -> None:
    """Parse a generator's options, run it and print what it wrote.

    Every generator takes ``--out``, ``--seed``, ``--size H W`` and
    ``--nproc``; ``counts`` adds its integer options, each passed to
    ``generate`` under the option's name with ``_`` for ``-``. A
    ``ValueError`` of ``generate`` (a bad argument, or ``--out`` holding
    something else) exits with one line, not a traceback.

    Args:
        generate (Callable): ``generate(out_dir, **options)``, returning
            the counts of what it wrote.
        prog (str): the script's name, which starts the error line.
        description (str): what the script does, for ``--help``.
        counts (Sequence[tuple]): ``(option, default, help)`` of each
            integer option besides ``--seed`` and ``--nproc``.
        size (tuple): the default ``--size`` (H, W).
        summary (str): the line printed at the end, formatted with ``out``
            and the counts ``generate`` returns; the seconds taken follow.
        argv (Sequence[str], optional): the arguments (default:
            ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('--out', required=True, help='dataset root to write')
    parser.add_argument('--seed', type=int, default=0, help='random seed')
    for option, default, text in counts:
        parser.add_argument(option, type=int, default=default, help=text)
    parser.add_argument(
        '--size',
        type=int,
        nargs=2,
        default=size,
        metavar=('H', 'W'),
        help='image height and width')
    parser.add_argument(
        '--nproc', type=int, default=1, help='worker processes')
    options = vars(parser.parse_args(argv))
    out = options.pop('out')
    start = time.time()
    try:
        written = generate(out, **options)
    except ValueError as e:
        sys.exit(f'{prog}: error: {e}')
    print(
        summary.format(out=out, **written) + f'; {time.time() - start:.1f} s')
