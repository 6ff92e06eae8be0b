"""The whole WSSS pipeline, resumable: stage 1, pseudo labels, stage 2 and
its tests, each a step run in this process through :func:`run_train` and
:func:`run_test`.

.. code:: text

    run_pipeline(stage1, stage2, work_dir=DIR, ...)
      data      SynthVOC generated when the data root is empty
      (pretrain with ``pretrain=PRETRAIN_CONFIG`` when the file that the
      stage configs' backbone init_cfg names does not exist yet: SynthNet
      generated, trained, its top-1 tested, the weights published to that
      file; in the pretraining's own work dir, reused by every pipeline)
      stage1    train STAGE1                          -> DIR/stage1
      pseudo    test STAGE1 CKPT, out=DIR/pseudo      (train_aug labels,
                                                       scores on train)
      stage2    train STAGE2 on the pseudo labels     -> DIR/stage2
      val       test STAGE2 CKPT, model.test_cfg.crf=None
      val_crf   test STAGE2 CKPT                      (the config's CRF)
      baseline  the same steps for a baseline stage-1 config in
                DIR/baseline, on the same seed

Each step prints the equivalent ``tools/...`` command (any step can be run
again alone), writes its output to ``DIR/logs/<step>.log`` and shows its
progress on the terminal, condensed. A finished step leaves
``DIR/steps/<step>.json`` (atomically) and is skipped on the next run; a
killed training resumes from its last checkpoint; a failing step raises
:class:`StepFailed` with its name and the end of its log. With ``gpus > 1``
the trainings run as ``tools/dist_train.sh`` processes (the steps:
:mod:`rca_mm.apis.pipeline_steps`). :func:`load_experiments` reads the runs
and tables of ``configs/synthvoc/experiments.yaml``.
"""
import os
import os.path as osp
import sys
import time
from typing import List, Optional, Sequence

from mmengine.config import Config

from rca_mm.fileio import write_json_atomic
from .pipeline_steps import (Pipeline, StepFailed, check_total_batches,
                             machine_info, parse_options)
from .publish import publish_checkpoint

# The key of the stage-2 config that names the pseudo-label directory.
PSEUDO_LABEL_KEY = 'train_dataloader.dataset.data_prefix.seg_map_path'

STEPS = ('stage1', 'pseudo', 'stage2', 'val', 'val_crf')
PRETRAIN_STEPS = ('synthnet', 'pretrain', 'pretrain_val', 'pretrain_export')

# The SynthVOC runs and tables (load_experiments).
SYNTHVOC_EXPERIMENTS = 'configs/synthvoc/experiments.yaml'


class _StopPipeline(Exception):
    """``until`` reached."""


def load_experiments(filename: str = SYNTHVOC_EXPERIMENTS) -> dict:
    """A file of experiments: the runs and the tables made of them.

    Args:
        filename (str): a YAML file with ``pretrain`` and ``stage2``
            (configs), ``runs`` (run name -> stage-1 config), ``tables``
            (table -> ``rows``, ``until``, ``pairs``). Default:
            :data:`SYNTHVOC_EXPERIMENTS`.

    Returns:
        dict: the file's content.

    Raises:
        ValueError: a key is missing, a table names a run the file does
            not have, or a config does not exist.
    """
    from mmengine.fileio import load
    experiments = load(filename)
    for key in ('pretrain', 'stage2', 'runs', 'tables'):
        if key not in experiments:
            raise ValueError(f'{filename} has no `{key}`')
    runs = experiments['runs']
    named = []
    for name, table in experiments['tables'].items():
        named += table['rows'] + list(table['pairs']) + list(
            table['pairs'].values())
        if table['until'] not in STEPS:
            raise ValueError(f'{filename}: tables.{name}.until must be one '
                             f'of {STEPS}, not {table["until"]!r}')
    unknown = sorted(set(named) - set(runs))
    if unknown:
        raise ValueError(f'{filename} names runs that `runs` does not have: '
                         f'{unknown}')
    configs = [experiments['pretrain'], experiments['stage2']] + list(
        runs.values())
    missing = [c for c in configs if not osp.isfile(c)]
    if missing:
        raise ValueError(f'{filename} names configs that do not exist: '
                         f'{missing} (run from the repository root)')
    return experiments


def pick(metrics: dict, *names: str) -> Optional[float]:
    """The first metric whose key ends with one of ``names``."""
    for name in names:
        for key, value in metrics.items():
            if key == name or key.endswith('/' + name):
                return float(value)
    return None


def backbone_checkpoint(config: str, options: Sequence[str]) -> Optional[str]:
    """The local file the config's ``model.backbone.init_cfg`` loads (after
    ``options``), if any."""
    # Parsed as the steps parse them (mmengine's DictAction).
    given = parse_options(options) or {}
    if given.get('model.backbone.init_cfg.checkpoint') is not None:
        return given['model.backbone.init_cfg.checkpoint']
    if 'model.backbone.init_cfg' in given and \
            given['model.backbone.init_cfg'] is None:
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


def _nproc() -> int:
    return min(4, os.cpu_count() or 1)


def generate_data(pipe: Pipeline, step: str, kind: str, root: str) -> None:
    """Generate SynthVOC or SynthNet into ``root`` as the step ``step``."""
    from rca_mm.datasets.synthetic import generate_synthnet, generate_synthvoc
    command = [
        sys.executable, f'tools/dataset_converters/{kind}.py', '--out', root
    ]
    if kind == 'synthvoc':
        command += ['--seed', '0']
    command += ['--nproc', str(_nproc())]

    def generate() -> None:
        if kind == 'synthvoc':
            generate_synthvoc(root, seed=0, nproc=_nproc())
        else:
            generate_synthnet(root, nproc=_nproc())

    pipe.run(step, command, generate)


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
    work_dir = work_dir or osp.join('work_dirs',
                                    osp.splitext(osp.basename(config))[0])
    pipe = Pipeline(work_dir)
    weights = osp.abspath(weights)
    reused = osp.isfile(weights)
    if reused:
        print(f'[pipeline] pretrained weights {weights} exist: reused')
    else:
        root = osp.abspath((parse_options(options)
                            or {}).get('train_dataloader.dataset.data_root')
                           or cfg.train_dataloader.dataset.data_root)
        if not osp.isdir(root) or not os.listdir(root):
            generate_data(pipe, 'synthnet', 'synthnet', root)
        options = data_options(root) + options
        ckpt = pipe.train('pretrain', config, options)
        pipe.test('pretrain_val', config, ckpt, options)
        # Always exported again: the file is what was missing.
        if osp.exists(pipe.marker('pretrain_export')):
            os.remove(pipe.marker('pretrain_export'))
        pipe.run('pretrain_export', [
            sys.executable, 'tools/model_converters/publish_model.py',
            '--no-sha', ckpt, weights
        ], lambda: publish_checkpoint(ckpt, weights, sha=False))
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
            raise _StopPipeline
        pseudo_dir = osp.join(pipe.work_dir, 'pseudo')
        # OAA: the hook gives the export the store beside the checkpoint.
        pipe.test('pseudo', stage1, ckpt1, opts1, out=pseudo_dir)
        if until == 'pseudo':
            raise _StopPipeline
        labels = osp.join(pseudo_dir, 'pseudo_labels')
        ckpt2 = pipe.train('stage2', stage2,
                           opts2 + seed_opt + [f'{PSEUDO_LABEL_KEY}={labels}'])
        if until == 'stage2':
            raise _StopPipeline
        pipe.test('val', stage2, ckpt2, opts2 + ['model.test_cfg.crf=None'])
        if until != 'val':
            pipe.test('val_crf', stage2, ckpt2, opts2)
    except _StopPipeline:
        pass
    # Read back from disk: a re-run with an earlier `until` keeps the
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


def run_pipeline(
    stage1: str,
    stage2: str,
    *,
    work_dir: str,
    data_root: Optional[str] = None,
    seed: int = 0,
    gpus: int = 1,
    until: str = STEPS[-1],
    pretrain_config: Optional[str] = None,
    pretrain_work_dir: Optional[str] = None,
    pretrain_cfg_options: Sequence[str] = (),
    baseline: Optional[str] = None,
    baseline_until: str = STEPS[-1],
    stage1_cfg_options: Sequence[str] = (),
    stage2_cfg_options: Sequence[str] = ()
) -> dict:
    """Run the pipeline (the steps not done before) and write its summary
    and release files.

    Args:
        stage1 (str): the stage-1 (classifier) config.
        stage2 (str): the stage-2 (segmentation) config.
        work_dir (str): where every step writes.
        data_root (str, optional): the dataset root of both stages
            (default: the stage-1 config's; SynthVOC is generated there when
            it is empty).
        seed (int): ``randomness.seed`` of both trainings. Default: 0.
        gpus (int): processes per training step. Default: 1.
        until (str): the last step, one of :data:`STEPS`.
        pretrain_config (str, optional): the pretraining config that makes
            the backbone file the stage configs start from, when that file
            does not exist. Default: None.
        pretrain_work_dir (str, optional): its work dir (default:
            ``work_dirs/<its name>``).
        pretrain_cfg_options (Sequence[str]): ``key=value`` overrides of
            the pretraining steps.
        baseline (str, optional): a baseline stage-1 config run beside in
            ``WORK_DIR/baseline`` on the same seed. Default: None.
        baseline_until (str): the baseline's last step.
        stage1_cfg_options (Sequence[str]): ``key=value`` overrides of the
            stage-1 steps (the baseline's too).
        stage2_cfg_options (Sequence[str]): ``key=value`` overrides of the
            stage-2 steps.

    Returns:
        dict: the summary (also ``WORK_DIR/summary.json``): the metrics, the
        wall time of each step, the machine, and ``baseline`` and
        ``pretrain`` when run. The release files of the trained models,
        with their logs and the summary, are in ``WORK_DIR/release/``
        (``manifest.json``).

    Raises:
        StepFailed: a step failed or cannot run; naming it and its log.
    """
    stage1_cfg_options = list(stage1_cfg_options)
    stage2_cfg_options = list(stage2_cfg_options)
    pipe = Pipeline(work_dir, gpus=gpus)
    cfg1 = Config.fromfile(stage1)
    root = osp.abspath(data_root or cfg1.train_dataloader.dataset.data_root)
    start = time.time()
    trainings = [(stage1, stage1_cfg_options)]
    if baseline:
        trainings.append((baseline, stage1_cfg_options))
    if STEPS.index(until) >= STEPS.index('stage2'):
        trainings.append((stage2, stage2_cfg_options))
    check_total_batches(trainings, gpus)
    if not osp.isdir(root) or not os.listdir(root):
        if 'synthvoc' not in cfg1.train_dataloader.dataset.type.lower():
            raise StepFailed(
                f'data root {root} is empty; only SynthVOC is generated '
                'by the pipeline (see docs/datasets.md for VOC and COCO)')
        generate_data(pipe, 'data', 'synthvoc', root)
    pretrained = None
    if pretrain_config:
        stages = ((stage1, stage1_cfg_options), (stage2, stage2_cfg_options),
                  (baseline, stage1_cfg_options))
        weights = {backbone_checkpoint(c, o) for c, o in stages if c} - {None}
        if len(weights) != 1:
            raise StepFailed(
                '--pretrain needs the stage configs to start from one '
                'local file (model.backbone.init_cfg.checkpoint); they '
                f'name {sorted(weights) or "none"}')
        pretrained = pretrain(pretrain_config, pretrain_work_dir,
                              weights.pop(), list(pretrain_cfg_options))
    summary = run_stages(pipe, stage1, stage2, root, seed, until,
                         stage1_cfg_options, stage2_cfg_options)
    if baseline:
        print(
            f'[pipeline] baseline {baseline}, up to {baseline_until}',
            flush=True)
        summary['baseline'] = run_stages(
            Pipeline(osp.join(pipe.work_dir, 'baseline'),
                     gpus=gpus), baseline, stage2, root, seed, baseline_until,
            stage1_cfg_options, stage2_cfg_options)
        summary['baseline']['until'] = baseline_until
    if pretrained is not None:
        summary['pretrain'] = pretrained
    summary['total_seconds'] = time.time() - start
    # The numbers repeat exactly on one machine only: say which one.
    summary['machine'] = machine_info()
    path = osp.join(pipe.work_dir, 'summary.json')
    write_json_atomic(path, summary)
    # Release files of the trained models (bank emptied, no RNG states),
    # with their logs and the summary: WORK_DIR/release/.
    pipe.release(dict(stage1=stage1, stage2=stage2), STEPS, path)
    return summary
