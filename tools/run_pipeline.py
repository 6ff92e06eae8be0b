# The whole WSSS pipeline, resumable (rca_mm.apis.run_pipeline):
#
#   python tools/run_pipeline.py STAGE1_CONFIG STAGE2_CONFIG --work-dir DIR
#   python tools/run_pipeline.py --experiment RUN --work-dir DIR
#       (a run of configs/synthvoc/experiments.yaml, with its pretraining)
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
# Every step runs in this process (the trainings with --gpus > 1 as
# tools/dist_train.sh processes). Its equivalent standard command is printed
# before it runs, so any step can be re-run alone; its output goes to
# DIR/logs/<step>.log and its progress to the terminal (the logger's lines,
# at most one every few seconds). A finished step leaves DIR/steps/<step>.json
# and is skipped on the next run (resumable); a training that was killed
# resumes from its last checkpoint.
# A failing step stops the pipeline with its name and log. DIR/summary.json
# gathers the metrics, the wall time of each step and the machine (CPU,
# torch build, threads; each step's record has its own). `--until pseudo` stops
# after the pseudo labels (stage 1 only); `--gpus 4` trains through
# tools/dist_train.sh. `--baseline BASELINE_STAGE1_CONFIG` then runs the same
# steps for a baseline classifier in DIR/baseline (up to
# `--baseline-until`), on the same seed, and the summary puts it beside.
import argparse
import json
import os.path as osp
import sys

from rca_mm.apis.pipeline import (STEPS, SYNTHVOC_EXPERIMENTS, StepFailed,
                                  load_experiments, run_pipeline, side_by_side)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Stage 1 -> pseudo labels -> stage 2, resumable')
    parser.add_argument(
        'stage1', nargs='?', help='stage-1 (classifier) config')
    parser.add_argument(
        'stage2', nargs='?', help='stage-2 (segmentation) config')
    parser.add_argument(
        '--experiment',
        help='instead of STAGE1 STAGE2: a run of --experiments (its stage-1 '
        'config, the file\'s stage-2 and, unless given, pretraining '
        'configs); --baseline may then name a run of the file too')
    parser.add_argument(
        '--experiments',
        default=SYNTHVOC_EXPERIMENTS,
        help='the experiments file of --experiment (default: %(default)s)')
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
    args = parser.parse_args()
    if args.experiment is None:
        if not (args.stage1 and args.stage2):
            parser.error('give the STAGE1 and STAGE2 configs, or '
                         '--experiment RUN')
        return args
    if args.stage1 or args.stage2:
        parser.error('give STAGE1 STAGE2 or --experiment, not both')
    try:
        experiments = load_experiments(args.experiments)
    except ValueError as err:
        parser.error(str(err))
    runs = experiments['runs']
    if args.experiment not in runs:
        parser.error(f'--experiment {args.experiment}: {args.experiments} '
                     f'has the runs {sorted(runs)}')
    args.stage1, args.stage2 = runs[args.experiment], experiments['stage2']
    args.pretrain = args.pretrain or experiments['pretrain']
    args.baseline = runs.get(args.baseline, args.baseline)
    return args


def main() -> None:
    args = parse_args()
    try:
        summary = run_pipeline(
            args.stage1,
            args.stage2,
            work_dir=args.work_dir,
            data_root=args.data_root,
            seed=args.seed,
            gpus=args.gpus,
            until=args.until,
            pretrain_config=args.pretrain,
            pretrain_work_dir=args.pretrain_work_dir,
            pretrain_cfg_options=args.pretrain_cfg_options,
            baseline=args.baseline,
            baseline_until=args.baseline_until,
            stage1_cfg_options=args.stage1_cfg_options,
            stage2_cfg_options=args.stage2_cfg_options)
    except StepFailed as err:
        print(f'[pipeline] stopped: {err}', file=sys.stderr)
        sys.exit(1)
    work_dir = osp.abspath(args.work_dir)
    print(json.dumps(summary, indent=2))
    if 'baseline' in summary:
        print(side_by_side(summary))
    print(f'[pipeline] summary: {osp.join(work_dir, "summary.json")} '
          f'({summary["total_seconds"]:.0f} s)')
    with open(osp.join(work_dir, 'release', 'manifest.json')) as f:
        models = json.load(f)['models']
    print(f'[pipeline] release: {osp.join(work_dir, "release")} (' +
          ', '.join(m['file'] for m in models.values()) + ')')


if __name__ == '__main__':
    main()
