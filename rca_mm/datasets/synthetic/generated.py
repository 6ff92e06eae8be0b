"""What the dataset generators (SynthVOC, SynthNet) share.

Each generator renders image ``i`` from its own seeded generator, writes
every file atomically, and records its arguments in a JSON file that says
whether the dataset is complete, so a re-run with the same arguments does
nothing, an interrupted one is redone and other arguments are refused.
"""
import json
import os
import os.path as osp
from multiprocessing import Pool
from typing import Callable, List, Sequence, Tuple

from mmengine.utils import track_parallel_progress, track_progress

from rca_mm.fileio import atomic_write


def write_text(path: str, text: str) -> None:
    """Write a text file atomically."""

    def save(tmp):
        with open(tmp, 'w') as f:
            f.write(text)

    atomic_write(path, save)


def write_meta(path: str, meta: dict) -> None:
    """Write the generator's JSON record atomically."""
    write_text(path, json.dumps(meta, indent=1))


def checked_size(size: Sequence[int], nproc: int) -> Tuple[int, int]:
    """The image ``size`` as a tuple ``(H, W)``, after checking it and the
    number of worker processes ``nproc``.

    Raises:
        ValueError: ``size`` is not two sides of at least 32 pixels, or
            ``nproc`` is below 1.
    """
    size = tuple(int(x) for x in size)
    if len(size) != 2 or min(size) < 32:
        raise ValueError(f'size must be (H, W) with H, W >= 32, got {size}')
    if nproc < 1:
        raise ValueError(f'nproc must be >= 1, got {nproc}')
    return size


def is_complete(out_dir: str, meta_path: str, args: dict,
                required: Sequence[str]) -> bool:
    """Whether ``out_dir`` already holds this exact, complete dataset.

    Args:
        out_dir (str): the dataset root.
        meta_path (str): its JSON record (``args`` and ``complete``).
        args (dict): the arguments asked for.
        required (Sequence[str]): files (relative to ``out_dir``) that the
            generator writes last; the dataset is complete only with them.

    Raises:
        ValueError: ``out_dir`` is non-empty and holds something else.
    """
    if not osp.isdir(out_dir) or not os.listdir(out_dir):
        return False
    name = osp.basename(meta_path)
    if not osp.isfile(meta_path):
        raise ValueError(
            f'{out_dir} is not empty and has no {name}: refusing to write '
            'a generated dataset into it; choose an empty or new --out '
            'directory')
    with open(meta_path) as f:
        old = json.load(f)
    diff = {
        k: (old.get('args', {}).get(k), v)
        for k, v in args.items() if old.get('args', {}).get(k) != v
    }
    if diff:
        detail = ', '.join(f'{k}: {a!r} there, {b!r} asked'
                           for k, (a, b) in diff.items())
        raise ValueError(
            f'{out_dir} holds a dataset made with other arguments '
            f'({detail}; see {meta_path}); delete it or choose another --out')
    return old.get('complete', False) and all(
        osp.isfile(osp.join(out_dir, f)) for f in required)


def mark_incomplete(out_dir: str, meta_path: str, args: dict,
                    required: Sequence[str]) -> dict:
    """Start writing a dataset: remove the files that the generator writes
    last (``required``, as for :func:`is_complete`) and record the
    arguments with ``"complete": false``; returns that record."""
    for rel in required:
        path = osp.join(out_dir, rel)
        os.makedirs(osp.dirname(path), exist_ok=True)
        if osp.exists(path):
            os.remove(path)
    meta = dict(args=args, complete=False)
    write_meta(meta_path, meta)
    return meta


def map_jobs(fn: Callable, jobs: List, nproc: int,
             show_progress: bool) -> List:
    """``[fn(job) for job in jobs]`` in ``nproc`` processes, in order, with
    mmengine's progress bar when ``show_progress``."""
    if show_progress and nproc > 1:
        return track_parallel_progress(fn, jobs, nproc, chunksize=16)
    if show_progress:
        return track_progress(fn, jobs)
    if nproc > 1:
        with Pool(nproc) as pool:
            return pool.map(fn, jobs, chunksize=16)
    return [fn(job) for job in jobs]
