# The SynthVOC version of the paper's tables: every method through the whole
# pipeline (tools/run_pipeline.py) with several seeds, reported as mean ± std.
#
#   python tools/analysis_tools/synthvoc_table.py --work-dir work_dirs/table
#       [--methods cam oaa eps rca-rsc rca-rsa rca rca-oaa rca-eps]
#       [--seeds 0 1 2] [--until pseudo|val|val_crf] [--stage2-cfg-options ...]
#
# Each (method, seed) run is resumable (its pipeline skips finished steps),
# so the command can be re-run after an interruption; `--until pseudo` fills
# the pseudo-label columns only (stage 1 of every run), and a later run
# without it adds the segmentation columns. Writes WORK_DIR/table.md
# (the Markdown table, with the command) and WORK_DIR/table.png.
import argparse
import json
import os.path as osp
import subprocess
import sys

import numpy as np

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)

from rca_mm.utils.fileio import atomic_open  # noqa: E402

STAGE1 = 'configs/synthvoc/{}_r18-w16_8e_synthvoc-112x112.py'
STAGE2 = 'configs/synthvoc/deeplabv2_r18-w32-d8_1k_synthvoc-112x112.py'
METHODS = ('cam', 'oaa', 'eps', 'rca-rsc', 'rca-rsa', 'rca', 'rca-oaa',
           'rca-eps')
COLUMNS = (('pseudo_label_miou_full', 'pseudo mIoU (full)'),
           ('pseudo_label_miou_confident', 'pseudo mIoU (confident)'),
           ('pseudo_label_coverage', 'coverage'),
           ('seg_val_miou', 'seg val mIoU'),
           ('seg_val_miou_crf', 'seg val mIoU + CRF'))
# Each RCA variant and the baseline it is added to (the paired comparison),
# and the columns compared.
BASELINES = {'rca-rsc': 'cam', 'rca-rsa': 'cam', 'rca': 'cam',
             'rca-oaa': 'oaa', 'rca-eps': 'eps'}
PAIRED_COLUMNS = (COLUMNS[0], COLUMNS[1], COLUMNS[3])
# The summary value that shows a run has reached each --until step.
REACHED = dict(pseudo='pseudo_label_miou_full', val='seg_val_miou',
               val_crf='seg_val_miou_crf')


def run_one(method: str, seed: int, args) -> dict:
    """The summary of one pipeline run (running it if needed)."""
    work = osp.join(args.work_dir, f'{method}_seed{seed}')
    summary = osp.join(work, 'summary.json')
    if not osp.exists(summary) or _load(summary).get(
            REACHED[args.until]) is None:
        cmd = [
            sys.executable, 'tools/run_pipeline.py',
            STAGE1.format(method), STAGE2, '--work-dir', work, '--seed',
            str(seed), '--until', args.until
        ]
        if args.data_root:
            cmd += ['--data-root', args.data_root]
        if args.stage1_cfg_options:
            cmd += ['--stage1-cfg-options'] + args.stage1_cfg_options
        if args.stage2_cfg_options:
            cmd += ['--stage2-cfg-options'] + args.stage2_cfg_options
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
    lines += ['', f'Seeds: {list(seeds)}. Per seed (pseudo mIoU full; '
              'seg val mIoU):', '']
    for method, runs in results.items():
        full = ', '.join(f'{v:.2f}' for v in _values(runs, COLUMNS[0][0]))
        seg = ', '.join(f'{v:.2f}' for v in _values(runs, COLUMNS[3][0]))
        lines.append(f'- {method}: {full}; {seg or "—"}')
    return '\n'.join(lines) + '\n'


def paired(results: dict) -> str:
    """RCA minus its baseline, seed by seed (same seed, same data).

    Runs of one seed share the data and the initial weights of the
    backbone, so the per-seed difference removes much of the seed noise
    that the two separate means carry.
    """
    lines = ['| RCA variant − baseline | ' + ' | '.join(
        f'Δ {name}' for _, name in PAIRED_COLUMNS) +
             ' |', '| --- | --- | --- | --- |']
    for method, base in BASELINES.items():
        if method not in results or base not in results:
            continue
        cells = []
        for key, _ in PAIRED_COLUMNS:
            diffs = np.array([
                a[key] - b[key]
                for a, b in zip(results[method], results[base])
                if a.get(key) is not None and b.get(key) is not None
            ])
            if len(diffs) == 0:
                cells.append('—')
                continue
            spread = (f' ± {diffs.std(ddof=1):.2f}'
                      if len(diffs) > 1 else '')
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
        ax.bar(x + i * width, [v.mean() if len(v) else 0 for v in vals],
               width, yerr=[v.std(ddof=1) if len(v) > 1 else 0 for v in vals],
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
    parser.add_argument('--methods', nargs='+', default=list(METHODS),
                        choices=METHODS)
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    parser.add_argument('--data-root')
    parser.add_argument('--until', choices=tuple(REACHED), default='val_crf',
                        help='last pipeline step of every run')
    parser.add_argument('--stage1-cfg-options', nargs='+', default=[])
    parser.add_argument('--stage2-cfg-options', nargs='+', default=[])
    args = parser.parse_args()
    results = {
        m: [run_one(m, s, args) for s in args.seeds]
        for m in args.methods
    }
    text = (f'Command: `python {" ".join(sys.argv)}`\n\n' +
            table(results, args.seeds) + paired(results))
    with atomic_open(osp.join(args.work_dir, 'table.md'), 'w') as f:
        f.write(text)
    plot(results, osp.join(args.work_dir, 'table.png'))
    print(text)


if __name__ == '__main__':
    main()
