# The SynthVOC version of the paper's tables: every method through the whole
# pipeline (rca_mm.apis.run_pipeline, in this process) with several seeds,
# reported as mean ± std and as differences paired by seed.
#
#   python tools/analysis_tools/synthvoc_table.py --work-dir work_dirs/table \
#       [--table main|table1|mixup|gamma|k|memory] [--methods ...] \
#       [--seeds 0 1 2] [--until pseudo|val|val_crf] [--scratch] \
#       [--stage1-cfg-options ...] [--stage2-cfg-options ...]
#
# --table picks the rows, the last step of every run and the paired
# comparisons: `main` (CAM, OAA+, EPS, RCA on each, RSC-only and RSA-only on
# CAM), `table1` (the paper's Table 1 on OAA+), `mixup`, `gamma`, `k` and
# `memory` (Sec. 4.2, on RCA + OAA+, pseudo labels only); the runs and
# tables are those of configs/synthvoc/experiments.yaml. Every stage starts
# from the SynthNet-pretrained backbone (made once, docs/synthnet.md);
# --scratch trains both stages from random weights instead (its runs are
# <row>_scratch_seed<seed>, so the two starts never share a run).
#
# Each (method, seed) run is resumable (its pipeline skips finished steps)
# and shared by the tables that contain it, so the command can be re-run
# after an interruption; `--until pseudo` fills the pseudo-label columns
# only, and a later run without it adds the segmentation columns. Writes
# WORK_DIR/<table>.md (the Markdown table, with the command) and
# WORK_DIR/<table>.png.
import argparse
import json
import os.path as osp
import sys

import numpy as np

from rca_mm.apis.pipeline import StepFailed, load_experiments, run_pipeline
from rca_mm.fileio import atomic_open

COLUMNS = (('pseudo_label_miou_full', 'pseudo mIoU (full)'),
           ('pseudo_label_miou_confident',
            'pseudo mIoU (confident)'), ('pseudo_label_coverage', 'coverage'),
           ('seg_val_miou', 'seg val mIoU'), ('seg_val_miou_crf',
                                              'seg val mIoU + CRF'))
PAIRED_COLUMNS = (COLUMNS[0], COLUMNS[1], COLUMNS[3], COLUMNS[4])

# The summary value that shows a run has reached each --until step.
REACHED = dict(
    pseudo='pseudo_label_miou_full',
    val='seg_val_miou',
    val_crf='seg_val_miou_crf')


def run_one(method: str, seed: int, args, experiments: dict) -> dict:
    """The summary of one pipeline run (running it if needed)."""
    # A run from random weights never stands for a pretrained one.
    start = '_scratch' if args.scratch else ''
    work = osp.join(args.work_dir, f'{method}{start}_seed{seed}')
    summary = osp.join(work, 'summary.json')
    if not osp.exists(summary) or _load(summary).get(
            REACHED[args.until]) is None:
        stage1, stage2 = args.stage1_cfg_options, args.stage2_cfg_options
        pretrain = experiments['pretrain']
        if args.scratch:
            scratch = ['model.backbone.init_cfg=None']
            stage1, stage2 = scratch + stage1, scratch + stage2
            pretrain = None
        print(f'[table] {method} seed {seed}', flush=True)
        run_pipeline(
            experiments['runs'][method],
            experiments['stage2'],
            work_dir=work,
            data_root=args.data_root,
            seed=seed,
            until=args.until,
            pretrain_config=pretrain,
            stage1_cfg_options=stage1,
            stage2_cfg_options=stage2)
    return _load(summary)


def _load(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def _values(runs, key: str) -> np.ndarray:
    return np.array([r[key] for r in runs if r.get(key) is not None])


def table(results: dict, seeds) -> str:
    """Markdown rows ``method | mean ± std`` for every column."""
    head = '| method | ' + ' | '.join(name for _, name in COLUMNS) + ' |'
    lines = [head, '|' + ' --- |' * (len(COLUMNS) + 1)]
    for method, runs in results.items():
        cells = []
        for key, _ in COLUMNS:
            values = _values(runs, key)
            cell = (f'{values.mean():.2f} ± {values.std(ddof=1):.2f}'
                    if len(values) > 1 else
                    (f'{values[0]:.2f}' if len(values) else '—'))
            if 0 < len(values) < len(runs):
                cell += f' (n={len(values)})'  # seeds not run this far
            cells.append(cell)
        lines.append(f'| {method} | ' + ' | '.join(cells) + ' |')
    lines += [
        '', f'Seeds: {list(seeds)}. Per seed (pseudo mIoU full; '
        'seg val mIoU):', ''
    ]
    for method, runs in results.items():
        full = ', '.join(f'{v:.2f}' for v in _values(runs, COLUMNS[0][0]))
        seg = ', '.join(f'{v:.2f}' for v in _values(runs, COLUMNS[3][0]))
        lines.append(f'- {method}: {full}; {seg or "—"}')
    return '\n'.join(lines) + '\n'


def paired(results: dict, pairs: dict) -> str:
    """Each row of ``pairs`` minus the row it is compared with, seed by
    seed (same seed, same data).

    Runs of one seed share the data and the initial weights of the
    backbone, so the per-seed difference removes much of the seed noise
    that the two separate means carry.
    """
    lines = [
        '| row − compared row | ' +
        ' | '.join(f'Δ {name}' for _, name in PAIRED_COLUMNS) + ' |',
        '| --- |' + ' --- |' * len(PAIRED_COLUMNS)
    ]
    for method, base in pairs.items():
        if method not in results or base not in results:
            continue
        cells = []
        for key, _ in PAIRED_COLUMNS:
            diffs = np.array([
                a[key] - b[key] for a, b in zip(results[method], results[base])
                if a.get(key) is not None and b.get(key) is not None
            ])
            if len(diffs) == 0:
                cells.append('—')
                continue
            spread = (f' ± {diffs.std(ddof=1):.2f}' if len(diffs) > 1 else '')
            cells.append(f'{diffs.mean():+.2f}{spread} '
                         f'({(diffs > 0).sum()}/{len(diffs)} seeds > 0)')
        lines.append(f'| {method} − {base} | ' + ' | '.join(cells) + ' |')
    if len(lines) == 2:
        return ''
    return ('\nPaired by seed (mean ± sample std of the per-seed '
            'differences):\n\n' + '\n'.join(lines) + '\n')


def plot(results: dict, path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 3.5))
    keys = [COLUMNS[0], COLUMNS[1], COLUMNS[3]]
    width = 0.8 / len(keys)
    x = np.arange(len(results))
    for i, (key, name) in enumerate(keys):
        vals = [_values(runs, key) for runs in results.values()]
        ax.bar(
            x + i * width, [v.mean() if len(v) else 0 for v in vals],
            width,
            yerr=[v.std(ddof=1) if len(v) > 1 else 0 for v in vals],
            label=name)
    ax.set_xticks(x + width)
    ax.set_xticklabels(list(results))
    ax.set_ylabel('mIoU (%)')
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_open(path, 'wb') as f:
        fig.savefig(f, format='png', dpi=100)


def main():
    experiments = load_experiments()
    tables = experiments['tables']
    parser = argparse.ArgumentParser(description='SynthVOC method table')
    parser.add_argument('--work-dir', required=True)
    parser.add_argument(
        '--table',
        choices=tuple(tables),
        default='main',
        help='the rows, last step and comparisons')
    parser.add_argument(
        '--methods',
        nargs='+',
        choices=tuple(experiments['runs']),
        help='rows to run instead of the table\'s')
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    parser.add_argument('--data-root')
    parser.add_argument(
        '--until',
        choices=tuple(REACHED),
        help='last pipeline step of every run (default: '
        'the table\'s)')
    parser.add_argument(
        '--scratch',
        action='store_true',
        help='both stages from random weights, not from the '
        'SynthNet-pretrained backbone')
    parser.add_argument('--stage1-cfg-options', nargs='+', default=[])
    parser.add_argument('--stage2-cfg-options', nargs='+', default=[])
    args = parser.parse_args()
    chosen = tables[args.table]
    args.until = args.until or chosen['until']
    try:
        results = {
            m: [run_one(m, s, args, experiments) for s in args.seeds]
            for m in (args.methods or chosen['rows'])
        }
    except StepFailed as err:
        print(f'[table] stopped: {err}', file=sys.stderr)
        sys.exit(1)
    text = (f'Command: `python {" ".join(sys.argv)}`\n\n' +
            table(results, args.seeds) + paired(results, chosen['pairs']))
    with atomic_open(osp.join(args.work_dir, f'{args.table}.md'), 'w') as f:
        f.write(text)
    plot(results, osp.join(args.work_dir, f'{args.table}.png'))
    print(text)


if __name__ == '__main__':
    main()
