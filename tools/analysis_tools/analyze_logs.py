# Plot logged scalars of mmengine JSON logs, in the shape of
# mmsegmentation 1.x's tools/analysis_tools/analyze_logs.py:
#   python tools/analysis_tools/analyze_logs.py LOG [LOG ...] \
#       [--keys loss loss_rsc] [--legend L ...] [--title T] --out FILE.png
# LOG: a run's vis_data/scalars.json (or <timestamp>.json), its
# <timestamp>/ directory, or a work_dir (its newest run). Training scalars
# are drawn against the iteration; validation metrics against their step
# (epochs for stage 1, iterations for stage 2), on an axes of their own
# when the units differ. --list prints the keys each log has.
import argparse

from rca_mm.visualization.figure_io import save_figure
from rca_mm.visualization.log_curves import load_scalar_log, plot_scalar_curves


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Analyze Json Log')
    parser.add_argument(
        'json_logs',
        type=str,
        nargs='+',
        help='path of train log in json format (or its run or work dir)')
    parser.add_argument(
        '--keys',
        type=str,
        nargs='+',
        default=['loss'],
        help='the scalars to plot, e.g. loss loss_rsc mIoU multi-label/mAP')
    parser.add_argument('--title', type=str, help='title of figure')
    parser.add_argument(
        '--legend',
        type=str,
        nargs='+',
        default=None,
        help='legend of each plot (one per log and key, logs outer)')
    parser.add_argument(
        '--out', type=str, default=None, help='picture to write (.png, ...)')
    parser.add_argument('--dpi', type=int, default=100)
    parser.add_argument(
        '--list',
        action='store_true',
        help='print the keys of each log (and a test run\'s summary) and '
        'exit')
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    logs = [load_scalar_log(path) for path in args.json_logs]
    if args.list:
        for log in logs:
            print(f'{log.path}:')
            for key, series in sorted(log.series.items()):
                kind = 'train' if series.train else 'metric'
                print(f'  {key}: {len(series.values)} values ({kind}, '
                      f'per {series.unit})')
            for summary in log.summaries:
                print(f'  summary (no step): {summary}')
        return
    if args.out is None:
        raise SystemExit('--out FILE.png is needed (the tool draws with the '
                         'Agg backend, without a window)')
    # Legend: the key alone for one log, else '<log as given>_<key>'.
    names = args.json_logs if len(logs) > 1 else None
    fig = plot_scalar_curves(
        logs, args.keys, legend=args.legend, title=args.title, names=names)
    for log in logs:
        for key in args.keys:
            if key in log.series:
                series = log.series[key]
                print(f'{log.path}: {key}, {len(series.values)} values, last '
                      f'{series.values[-1]:.4g} at {series.unit} '
                      f'{series.steps[-1]}')
    save_figure(fig, args.out, dpi=args.dpi)
    print(f'save curve to: {args.out}')


if __name__ == '__main__':
    main()
