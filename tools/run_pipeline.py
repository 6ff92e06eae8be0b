# The whole WSSS pipeline as a chain of the standard tools:
#
#   python tools/run_pipeline.py STAGE1_CONFIG STAGE2_CONFIG --work-dir DIR
#
#   data     SynthVOC generated when the data root is empty (SynthVOC only)
#   (pretraining, with --pretrain PRETRAIN_CONFIG, when the file that the
#   stage configs' backbone init_cfg names does not exist yet: SynthNet
#   generated, tools/train.py PRETRAIN_CONFIG, its top-1 by tools/test.py,
#   the weights written to that file by publish_model.py --no-sha; in the
#   pretraining's own work dir, so every pipeline after it reuses the file)
#   stage1   tools/train.py STAGE1                           -> DIR/stage1
#   pseudo   tools/test.py STAGE1 CKPT --out DIR/pseudo      (train_aug labels,
#                                                             scores on train)
#   stage2   tools/train.py STAGE2 --cfg-options <pseudo-label dir>
#   val      tools/test.py STAGE2 CKPT --cfg-options model.test_cfg.crf=None
#   val_crf  tools/test.py STAGE2 CKPT                       (the config's CRF)
#
# Every step is one standard command, printed before it runs and logged to
# DIR/logs/<step>.log, so any step can be re-run alone; the terminal shows
# its progress (the logger's lines, at most one every few seconds). A
# finished step leaves DIR/steps/<step>.json and is skipped on the next run
# (resumable); a training that was killed resumes from its last checkpoint.
# A failing step stops the pipeline with its name and log. DIR/summary.json
# gathers the metrics, the wall time of each step and the machine (CPU,
# torch build, threads; each step's record has its own). `--until pseudo` stops
# after the pseudo labels (stage 1 only); `--gpus 4` trains through
# tools/dist_train.sh. `--baseline BASELINE_STAGE1_CONFIG` then runs the same
# steps for a baseline classifier in DIR/baseline (up to
# `--baseline-until`), on the same seed, and the summary puts it beside.
import argparse
import json
import os
import os.path as osp
import sys
import time
from typing import List, Optional

from mmengine.config import Config

from rca_mm.engine.pipeline import (Pipeline, StepFailed, check_total_batches,
                                    machine_info)
from rca_mm.fileio import write_json_atomic

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

# The key of the stage-2 config that names the pseudo-label directory.
PSEUDO_LABEL_KEY = 'train_dataloader.dataset.data_prefix.seg_map_path'

STEPS = ('stage1', 'pseudo', 'stage2', 'val', 'val_crf')
PRETRAIN_STEPS = ('synthnet', 'pretrain', 'pretrain_val', 'pretrain_export')


class StopPipeline(Exception):
    """``--until`` reached."""


def pick(metrics: dict, *names: str) -> Optional[float]:
    """The first metric whose key ends with one of ``names``."""
    for name in names:
        for key, value in metrics.items():
            if key == name or key.endswith('/' + name):
                return float(value)
    return None


def option_value(options: List[str], key: str) -> Optional[str]:
    """The value that ``--cfg-options``-style ``key=value`` strings give
    ``key`` (the last one wins, as in mmengine), else None."""
    found = None
    for option in options:
        name, _, value = option.partition('=')
        if name == key:
            found = value
    return found


def backbone_checkpoint(config: str, options: List[str]) -> Optional[str]:
    """The local file the config's ``model.backbone.init_cfg`` loads (after
    ``options``), if any."""
    given = option_value(options, 'model.backbone.init_cfg.checkpoint')
    if given is not None:
        return given
    if option_value(options, 'model.backbone.init_cfg') == 'None':
        return None
    init = Config.fromfile(config).model.get('backbone', {}).get('init_cfg')
    for entry in ([init] if isinstance(init, dict) else init or []):
        path = entry.get('checkpoint')
        if entry.get('type') == 'Pretrained' and path and '://' not in path:
            return path
    return None


def data_options(root: str) -> List[str]:
    """``--cfg-options`` that point every dataloader at ``root``."""
    return [
        f'{loader}.dataset.data_root={root}'
        for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')
    ]


def nproc() -> List[str]:
    return ['--nproc', str(min(4, os.cpu_count() or 1))]


def pretrain(config: str, work_dir: Optional[str], weights: str,
             options: List[str]) -> dict:
    """Make ``weights`` with the pretraining ``config`` unless it exists.

    SynthNet is generated when the config's data root is empty; the
    training, its top-1 test and the export are steps of their own in the
    pretraining's work dir (default ``work_dirs/<config name>``), so a
    killed pretraining resumes and every pipeline reuses the result.

    Returns:
        dict: ``config``, ``weights``, ``reused`` (the file existed),
        ``top1``/``top5`` (when this work dir tested it) and
        ``step_seconds``.
    """
    cfg = Config.fromfile(config)
    work_dir = work_dir or osp.join(REPO, 'work_dirs',
                                    osp.splitext(osp.basename(config))[0])
    pipe = Pipeline(work_dir, sys.executable, 1, REPO)
    weights = osp.join(REPO, weights)
    reused = osp.isfile(weights)
    if reused:
        print(f'[pipeline] pretrained weights {weights} exist: reused')
    else:
        root = osp.join(
            REPO,
            option_value(options, 'train_dataloader.dataset.data_root')
            or cfg.train_dataloader.dataset.data_root)
        if not osp.isdir(root) or not os.listdir(root):
            pipe.run('synthnet', [
                sys.executable, 'tools/dataset_converters/synthnet.py',
                '--out', root
            ] + nproc())
        options = data_options(root) + options
        ckpt = pipe.train('pretrain', config, options)
        pipe.test('pretrain_val', config, ckpt, options)
        # Always exported again: the file is what was missing.
        if osp.exists(pipe.marker('pretrain_export')):
            os.remove(pipe.marker('pretrain_export'))
        pipe.run('pretrain_export', [
            sys.executable, 'tools/model_converters/publish_model.py',
            '--no-sha', ckpt, weights
        ])
    metrics = pipe.metrics('pretrain_val')
    return dict(
        config=config,
        weights=weights,
        reused=reused,
        top1=pick(metrics, 'top1'),
        top5=pick(metrics, 'top5'),
        step_seconds=pipe.step_seconds(PRETRAIN_STEPS))


def run_stages(pipe: Pipeline, stage1: str, stage2: str, root: str, seed: int,
               until: str, stage1_options: List[str],
               stage2_options: List[str]) -> dict:
    """Stage 1, pseudo labels, stage 2 and its tests, up to ``until``;
    returns the summary (the metrics of every step finished so far)."""
    opts1 = data_options(root) + stage1_options
    opts2 = data_options(root) + stage2_options
    seed_opt = [f'randomness.seed={seed}']
    try:
        ckpt1 = pipe.train('stage1', stage1, opts1 + seed_opt)
        if until == 'stage1':
            raise StopPipeline
        pseudo_dir = osp.join(pipe.work_dir, 'pseudo')
        # OAA: the hook gives the export the store beside the checkpoint.
        pipe.test('pseudo', stage1, ckpt1, opts1, out=pseudo_dir)
        if until == 'pseudo':
            raise StopPipeline
        labels = osp.join(pseudo_dir, 'pseudo_labels')
        ckpt2 = pipe.train('stage2', stage2,
                           opts2 + seed_opt + [f'{PSEUDO_LABEL_KEY}={labels}'])
        if until == 'stage2':
            raise StopPipeline
        pipe.test('val', stage2, ckpt2, opts2 + ['model.test_cfg.crf=None'])
        if until != 'val':
            pipe.test('val_crf', stage2, ckpt2, opts2)
    except StopPipeline:
        pass
    # Read back from disk: a re-run with an earlier --until keeps the
    # numbers of the steps that finished before.
    pseudo, val, val_crf = (
        pipe.metrics(s) for s in ('pseudo', 'val', 'val_crf'))
    return dict(
        stage1_config=stage1,
        stage2_config=stage2,
        data_root=root,
        seed=seed,
        pseudo_label_miou_full=pick(pseudo, 'mIoU_full'),
        pseudo_label_miou_confident=pick(pseudo, 'mIoU_confident'),
        pseudo_label_coverage=pick(pseudo, 'coverage'),
        seg_val_miou=pick(val, 'mIoU'),
        seg_val_miou_crf=pick(val_crf, 'mIoU'),
        step_seconds=pipe.step_seconds(('data', ) + STEPS))


# The rows of the side-by-side table: summary key, label.
TABLE_ROWS = (('pseudo_label_miou_full', 'pseudo-label mIoU (full)'),
              ('pseudo_label_miou_confident', 'pseudo-label mIoU (confident)'),
              ('pseudo_label_coverage', 'pseudo-label coverage (%)'),
              ('seg_val_miou', 'seg val mIoU'), ('seg_val_miou_crf',
                                                 'seg val mIoU + CRF'))


def side_by_side(summary: dict) -> str:
    """The run and its baseline as a small table (``-``: not run)."""
    base = summary['baseline']
    names = (osp.basename(summary['stage1_config']).split('_')[0],
             osp.basename(base['stage1_config']).split('_')[0])
    lines = [
        f'{"seed " + str(summary["seed"]):<30} {names[0]:>10} '
        f'{names[1]:>10} {"difference":>11}'
    ]
    for key, label in TABLE_ROWS:
        a, b = summary.get(key), base.get(key)
        diff = f'{a - b:+11.2f}' if a is not None and b is not None \
            else f'{"-":>11}'
        cells = [
            f'{v:10.2f}' if v is not None else f'{"-":>10}' for v in (a, b)
        ]
        lines.append(f'{label:<30} {cells[0]} {cells[1]} {diff}')
    if base.get('until', STEPS[-1]) != STEPS[-1]:
        lines.append(f'({names[1]} stopped after its {base["until"]} step: '
                     f'--baseline-until {STEPS[-1]} runs the rest)')
    return '\n'.join(lines)


def parse_args():
    parser = argparse.ArgumentParser(
        description='Stage 1 -> pseudo labels -> stage 2, resumable')
    parser.add_argument('stage1', help='stage-1 (classifier) config')
    parser.add_argument('stage2', help='stage-2 (segmentation) config')
    parser.add_argument('--work-dir', required=True)
    parser.add_argument(
        '--data-root',
        help='dataset root for both stages (default: the configs\')')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--gpus',
        type=int,
        default=1,
        help='processes per training step (tools/dist_train.sh when > 1)')
    parser.add_argument(
        '--until',
        choices=STEPS,
        default=STEPS[-1],
        help='stop after this step (e.g. pseudo: stage 1 only)')
    parser.add_argument(
        '--pretrain',
        help='pretraining config that makes the backbone file the stage '
        'configs start from, when that file does not exist')
    parser.add_argument(
        '--pretrain-work-dir',
        help='work dir of the pretraining (default: work_dirs/<its name>)')
    parser.add_argument(
        '--pretrain-cfg-options',
        nargs='+',
        default=[],
        help='extra key=value overrides of the pretraining steps')
    parser.add_argument(
        '--baseline',
        help='a baseline stage-1 config to run beside, in WORK_DIR/baseline')
    parser.add_argument(
        '--baseline-until',
        choices=STEPS,
        default=STEPS[-1],
        help='stop the baseline after this step')
    parser.add_argument(
        '--stage1-cfg-options',
        nargs='+',
        default=[],
        help='extra key=value overrides of the stage-1 steps (the baseline\'s '
        'too)')
    parser.add_argument(
        '--stage2-cfg-options',
        nargs='+',
        default=[],
        help='extra key=value overrides of the stage-2 steps')
    return parser.parse_args()


def main():
    args = parse_args()
    pipe = Pipeline(args.work_dir, sys.executable, args.gpus, REPO)
    cfg1 = Config.fromfile(args.stage1)
    root = osp.abspath(args.data_root
                       or cfg1.train_dataloader.dataset.data_root)
    start = time.time()
    try:
        trainings = [(args.stage1, args.stage1_cfg_options)]
        if args.baseline:
            trainings.append((args.baseline, args.stage1_cfg_options))
        if STEPS.index(args.until) >= STEPS.index('stage2'):
            trainings.append((args.stage2, args.stage2_cfg_options))
        check_total_batches(trainings, args.gpus)
        if not osp.isdir(root) or not os.listdir(root):
            if 'synthvoc' not in cfg1.train_dataloader.dataset.type.lower():
                raise StepFailed(
                    f'data root {root} is empty; only SynthVOC is generated '
                    'by the pipeline (see docs/datasets.md for VOC and COCO)')
            pipe.run('data', [
                sys.executable, 'tools/dataset_converters/synthvoc.py',
                '--out', root, '--seed', '0'
            ] + nproc())
        pretrained = None
        if args.pretrain:
            stages = ((args.stage1, args.stage1_cfg_options),
                      (args.stage2, args.stage2_cfg_options),
                      (args.baseline, args.stage1_cfg_options))
            weights = {backbone_checkpoint(c, o)
                       for c, o in stages if c} - {None}
            if len(weights) != 1:
                raise StepFailed(
                    '--pretrain needs the stage configs to start from one '
                    'local file (model.backbone.init_cfg.checkpoint); they '
                    f'name {sorted(weights) or "none"}')
            pretrained = pretrain(args.pretrain, args.pretrain_work_dir,
                                  weights.pop(), args.pretrain_cfg_options)
        summary = run_stages(pipe, args.stage1, args.stage2, root, args.seed,
                             args.until, args.stage1_cfg_options,
                             args.stage2_cfg_options)
        if args.baseline:
            print(
                f'[pipeline] baseline {args.baseline}, up to '
                f'{args.baseline_until}',
                flush=True)
            summary['baseline'] = run_stages(
                Pipeline(
                    osp.join(pipe.work_dir, 'baseline'), sys.executable,
                    args.gpus, REPO), args.baseline, args.stage2, root,
                args.seed, args.baseline_until, args.stage1_cfg_options,
                args.stage2_cfg_options)
            summary['baseline']['until'] = args.baseline_until
    except StepFailed as err:
        print(f'[pipeline] stopped: {err}', file=sys.stderr)
        sys.exit(1)
    if pretrained is not None:
        summary['pretrain'] = pretrained
    summary['total_seconds'] = time.time() - start
    # The numbers repeat exactly on one machine only: say which one.
    summary['machine'] = machine_info()
    path = osp.join(pipe.work_dir, 'summary.json')
    write_json_atomic(path, summary)
    # Release files of the trained models (bank emptied, no RNG states),
    # with their logs and the summary: WORK_DIR/release/.
    release = pipe.release(
        dict(stage1=args.stage1, stage2=args.stage2), STEPS, path)
    print(json.dumps(summary, indent=2))
    if 'baseline' in summary:
        print(side_by_side(summary))
    print(f'[pipeline] summary: {path} ({summary["total_seconds"]:.0f} s)')
    print(f'[pipeline] release: {osp.join(pipe.work_dir, "release")} (' +
          ', '.join(m['file'] for m in release['models'].values()) + ')')


if __name__ == '__main__':
    main()
