# The SynthVOC version of the paper's tables: every method through the whole
# pipeline (tools/run_pipeline.py) with several seeds, reported as mean ± std
# and as differences paired by seed.
#
#   python tools/analysis_tools/synthvoc_table.py --work-dir work_dirs/table \
#       [--table main|table1|mixup|gamma|k|memory] [--methods ...] \
#       [--seeds 0 1 2] [--until pseudo|val|val_crf] [--scratch] \
#       [--stage1-cfg-options ...] [--stage2-cfg-options ...]
#
# --table picks the rows, the last step of every run and the paired
# comparisons: `main` (CAM, OAA+, EPS, RCA on each, RSC-only and RSA-only on
# CAM), `table1` (the paper's Table 1 on OAA+), `mixup`, `gamma`, `k` and
# `memory` (Sec. 4.2, on RCA + OAA+, pseudo labels only). Every stage starts
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
import subprocess
import sys

import numpy as np

from rca_mm.fileio import atomic_open

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

STAGE1 = 'configs/synthvoc/{}_r18-w16_8e_synthvoc-112x112.py'
ABLATION = ('configs/synthvoc/ablations/'
            'rca-oaa_r18-w16_8e_synthvoc-112x112_{}.py')
STAGE2 = 'configs/synthvoc/deeplabv2_r18-w16-d8_1k_synthvoc-112x112.py'
PRETRAIN = 'configs/pretrain/resnet18-w16-d8_6e_synthnet-96x96.py'
METHODS = ('cam', 'oaa', 'eps', 'rca-rsc', 'rca-rsa', 'rca', 'rca-oaa',
           'rca-eps')
ABLATIONS = ('rsc-only', 'rsa-only', 'no-mixup', 'gamma0', 'gamma0.5',
             'gamma0.9', 'gamma0.999', 'k1', 'k50', 'kall', 'mem50')
COLUMNS = (('pseudo_label_miou_full', 'pseudo mIoU (full)'),
           ('pseudo_label_miou_confident',
            'pseudo mIoU (confident)'), ('pseudo_label_coverage', 'coverage'),
           ('seg_val_miou', 'seg val mIoU'), ('seg_val_miou_crf',
                                              'seg val mIoU + CRF'))
PAIRED_COLUMNS = (COLUMNS[0], COLUMNS[1], COLUMNS[3], COLUMNS[4])


def _ablation(name: str) -> str:
    return f'rca-oaa-{name}'


# Each table: its rows, the last step of its runs, and each row that is
# compared with another (the paired comparison), by seed. The default
# settings of RCA + OAA+ (gamma 0.99, K 10, every entry kept) are the
# `rca-oaa` row.
TABLES = {
    'main': (METHODS, 'val_crf', {
        'rca-rsc': 'cam',
        'rca-rsa': 'cam',
        'rca': 'cam',
        'rca-oaa': 'oaa',
        'rca-eps': 'eps'
    }),
    'table1': (('oaa', _ablation('rsc-only'), _ablation('rsa-only'),
                'rca-oaa'), 'val_crf', {
                    _ablation('rsc-only'): 'oaa',
                    _ablation('rsa-only'): 'oaa',
                    'rca-oaa': 'oaa'
                }),
    'mixup': ((_ablation('no-mixup'), 'rca-oaa'), 'pseudo', {
        'rca-oaa': _ablation('no-mixup')
    }),
    'gamma': (tuple(_ablation(f'gamma{g}') for g in ('0', '0.5', '0.9')) +
              ('rca-oaa', _ablation('gamma0.999')), 'pseudo', {
                  _ablation(f'gamma{g}'): 'rca-oaa'
                  for g in ('0', '0.5', '0.9', '0.999')
              }),
    'k': ((_ablation('k1'), 'rca-oaa', _ablation('k50'), _ablation('kall')),
          'pseudo', {
              _ablation(k): 'rca-oaa'
              for k in ('k1', 'k50', 'kall')
          }),
    'memory': ((_ablation('mem50'), 'rca-oaa'), 'pseudo', {
        _ablation('mem50'): 'rca-oaa'
    }),
}


def stage1_config(method: str) -> str:
    """The stage-1 config of a table row."""
    if method in METHODS:
        return STAGE1.format(method)
    return ABLATION.format(method[len('rca-oaa-'):])


# The summary value that shows a run has reached each --until step.
REACHED = dict(
    pseudo='pseudo_label_miou_full',
    val='seg_val_miou',
    val_crf='seg_val_miou_crf')


def run_one(method: str, seed: int, args) -> dict:
    """The summary of one pipeline run (running it if needed)."""
    # A run from random weights never stands for a pretrained one.
    start = '_scratch' if args.scratch else ''
    work = osp.join(args.work_dir, f'{method}{start}_seed{seed}')
    summary = osp.join(work, 'summary.json')
    if not osp.exists(summary) or _load(summary).get(
            REACHED[args.until]) is None:
        cmd = [
            sys.executable, 'tools/run_pipeline.py',
            stage1_config(method), STAGE2, '--work-dir', work, '--seed',
            str(seed), '--until', args.until
        ]
        stage1, stage2 = args.stage1_cfg_options, args.stage2_cfg_options
        if args.scratch:
            scratch = ['model.backbone.init_cfg=None']
            stage1, stage2 = scratch + stage1, scratch + stage2
        else:
            cmd += ['--pretrain', PRETRAIN]
        if args.data_root:
            cmd += ['--data-root', args.data_root]
        if stage1:
            cmd += ['--stage1-cfg-options'] + stage1
        if stage2:
            cmd += ['--stage2-cfg-options'] + stage2
        print(f'[table] {method} seed {seed}', flush=True)
        subprocess.run(cmd, cwd=REPO, check=True)
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
    parser = argparse.ArgumentParser(description='SynthVOC method table')
    parser.add_argument('--work-dir', required=True)
    parser.add_argument(
        '--table',
        choices=tuple(TABLES),
        default='main',
        help='the rows, last step and comparisons')
    parser.add_argument(
        '--methods',
        nargs='+',
        choices=METHODS + tuple(map(_ablation, ABLATIONS)),
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
    rows, until, pairs = TABLES[args.table]
    args.until = args.until or until
    results = {
        m: [run_one(m, s, args) for s in args.seeds]
        for m in (args.methods or rows)
    }
    text = (f'Command: `python {" ".join(sys.argv)}`\n\n' +
            table(results, args.seeds) + paired(results, pairs))
    with atomic_open(osp.join(args.work_dir, f'{args.table}.md'), 'w') as f:
        f.write(text)
    plot(results, osp.join(args.work_dir, f'{args.table}.png'))
    print(text)


if __name__ == '__main__':
    main()
