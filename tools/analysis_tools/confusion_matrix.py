# Draw the confusion matrix of a pseudo-label export, normalised per
# ground-truth row, in the shape of mmsegmentation 1.x's
# tools/analysis_tools/confusion_matrix.py. The matrix is the one
# PseudoLabelMetric scores with and saves beside the pseudo labels:
#   python tools/test.py CONFIG CKPT --out DIR   # DIR/confusion_matrix.json
#   python tools/analysis_tools/confusion_matrix.py DIR/confusion_matrix.json \
#       --out DIR/confusion_matrix.png [--no-ignore] [--title T] [--show]
# A directory is also accepted for the file (its confusion_matrix.json).
import argparse
import os.path as osp
import sys

from rca_mm.fileio.confusion_json import (CONFUSION_MATRIX_FILE,
                                          load_confusion_matrix)
from rca_mm.visualization.confusion_plot import (normalize_rows,
                                                 plot_confusion_matrix)
from rca_mm.visualization.figure_io import save_figure


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Draw the confusion matrix of a pseudo-label export')
    parser.add_argument(
        'matrix',
        help=f'{CONFUSION_MATRIX_FILE} written by PseudoLabelMetric '
        '(tools/test.py --out DIR), or DIR')
    parser.add_argument(
        '--out',
        help='picture to write (.png, .pdf, ...); default: the matrix file '
        'with .png')
    parser.add_argument(
        '--title',
        default='Normalized confusion matrix',
        help='title of the figure')
    parser.add_argument(
        '--color-theme', default='OrRd', help='matplotlib colour map')
    parser.add_argument(
        '--no-ignore',
        action='store_true',
        help='leave out the column of pixels the pseudo label left at 255 '
        '(the rows are still normalised by all their pixels)')
    parser.add_argument(
        '--no-values', action='store_true', help='no numbers in the cells')
    parser.add_argument('--dpi', type=int, default=150)
    parser.add_argument(
        '--show', action='store_true', help='also print the percentages')
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    path = args.matrix
    if osp.isdir(path):
        path = osp.join(path, CONFUSION_MATRIX_FILE)
    if not osp.isfile(path):
        sys.exit(f'{path}: no such file (PseudoLabelMetric writes '
                 f'{CONFUSION_MATRIX_FILE} under tools/test.py --out DIR)')
    matrix, classes = load_confusion_matrix(path)
    fig = plot_confusion_matrix(
        matrix,
        classes,
        title=args.title,
        cmap=args.color_theme,
        with_ignore=not args.no_ignore,
        with_values=not args.no_values)
    out = args.out or osp.splitext(path)[0] + '.png'
    save_figure(fig, out, dpi=args.dpi)
    print(f'{int(matrix.sum())} pixels, {len(classes)} classes; '
          f'wrote {out}')
    if args.show:
        percent = normalize_rows(matrix) * 100
        columns = list(classes) + ['ignore']
        width = max(len(c) for c in columns + ['ground truth'])
        print('ground truth \\ prediction, % of the row')
        print(' ' * width + ''.join(f'{c[:7]:>8}' for c in columns))
        for name, row in zip(classes, percent):
            print(f'{name:<{width}}' + ''.join(f'{v:8.1f}' for v in row))


if __name__ == '__main__':
    main()
