"""Test a model from a config and a checkpoint: what ``tools/test.py``
does after parsing its command line.

.. code:: text

    load_config               --cfg-options checked, work_dir, launcher
    cfg.load_from             the checkpoint (refused when it does not fit)
    --show/--show-dir, --tta, --amp, --out
    lock_dir(out)             one export per output dir
    build_runner -> runner.test() -> metrics (+ metrics JSON)
    num_failed                the images the evaluator could not write,
                              reported once
"""
import contextlib
import logging
from typing import Optional

from mmengine.config import Config
from mmengine.dist import is_main_process
from mmengine.logging import print_log

from rca_mm.engine.runner_builder import build_runner, load_config
from rca_mm.fileio import write_json_atomic
from rca_mm.utils.dist_utils import finish_distributed
from rca_mm.utils.workdir_lock import lock_dir


def trigger_visualization_hook(cfg: Config,
                               *,
                               show: bool = False,
                               show_dir: Optional[str] = None,
                               wait_time: float = 2) -> Config:
    """Make the config's visualization hook draw (and show or save)."""
    visualization_hook = cfg.default_hooks.get('visualization')
    if visualization_hook is None:
        raise KeyError(
            '--show/--show-dir need default_hooks.visualization in the '
            "config, e.g. dict(type='SegVisualizationHook') as in "
            'configs/_base_/default_runtime.py')
    visualization_hook['draw'] = True
    if show:
        visualization_hook['show'] = True
        visualization_hook['wait_time'] = wait_time
    if show_dir:
        cfg.visualizer.save_dir = show_dir
    return cfg


def add_output_dir(cfg: Config, out: str, *, save_cams: bool = False) -> None:
    """Point the test evaluator at ``out`` (``--out``), in place.

    Every metric gets ``output_dir=out`` and ``keep_results=True`` (mmseg's
    convention: ``IoUMetric`` writes its predictions there,
    ``PseudoLabelMetric`` its confusion matrix). A model that makes pseudo
    labels (``model.test_cfg.pseudo_label``) also gets
    ``PseudoLabelWriter`` appended to the evaluator, as mmpretrain's
    ``--out`` appends its dump metric: it writes ``out/pseudo_labels/`` and,
    with ``save_cams``, ``out/cams/``.

    Args:
        cfg (Config): the config, changed in place.
        out (str): the output directory.
        save_cams (bool): also write the CAMs (``--save-cams``). Default:
            False.
    """
    evaluator = cfg.test_evaluator
    metrics = list(evaluator) if isinstance(evaluator, (list, tuple)) \
        else [evaluator]
    for metric in metrics:
        metric['output_dir'] = out
        metric['keep_results'] = True
    model = cfg.model.get('module', cfg.model)  # the TTA model's own
    if (model.get('test_cfg') or {}).get('pseudo_label') is not None:
        metrics.append(
            dict(
                type='PseudoLabelWriter', output_dir=out, save_cams=save_cams))
        cfg.test_evaluator = metrics
    elif save_cams:
        raise ValueError('--save-cams writes the CAMs beside the pseudo '
                         'labels: it needs model.test_cfg.pseudo_label (a '
                         'stage-1 config)')


def num_failed(metrics: dict) -> int:
    """The images an evaluator could not write (``num_failed``, any
    prefix)."""
    return int(
        sum(v for k, v in metrics.items() if k.split('/')[-1] == 'num_failed'))


def run_test(config: str,
             checkpoint: str,
             *,
             work_dir: Optional[str] = None,
             out: Optional[str] = None,
             save_cams: bool = False,
             metrics_json: Optional[str] = None,
             show: bool = False,
             show_dir: Optional[str] = None,
             wait_time: float = 2,
             tta: bool = False,
             amp: bool = False,
             cfg_options: Optional[dict] = None,
             launcher: str = 'none',
             experiment_name: Optional[str] = None) -> dict:
    """Test (and evaluate) a model, as ``tools/test.py`` does.

    Args:
        config (str): the config file.
        checkpoint (str): the checkpoint to test.
        work_dir (str, optional): where the metrics and logs go (default:
            the config's ``work_dir``, else ``./work_dirs/<config name>``).
        out (str, optional): the directory where the test evaluator writes
            its outputs (predictions, pseudo labels), held by this run
            alone. Default: None.
        save_cams (bool): with ``out`` and pseudo labels, also write each
            image's CAMs to ``out/cams/<name>.npz`` (for
            ``tools/analysis_tools/sweep_bg_threshold.py``). Default: False.
        metrics_json (str, optional): also write the returned metrics to
            this JSON file (atomic). Default: None.
        show (bool): show the predictions. Default: False.
        show_dir (str, optional): the directory to save drawn predictions
            in. Default: None.
        wait_time (float): seconds per shown image. Default: 2.
        tta (bool): test-time augmentation (the config's ``tta_model`` and
            ``tta_pipeline``). Default: False.
        amp (bool): each test step under autocast. Default: False.
        cfg_options (dict, optional): ``--cfg-options``. Default: None.
        launcher (str): the job launcher. Default: ``'none'``.
        experiment_name (str, optional): the Runner's experiment name,
            which keys its logger; give each run in one process its own.
            Default: the config's, else the config name and a timestamp.

    Returns:
        dict: the evaluator's metrics. ``num_failed(metrics)`` images could
        not be labelled or written (logged); running the same call again
        labels and writes every image again.
    """
    # load config: Config.fromfile, --cfg-options (checked), launcher;
    # work_dir is determined in this priority: CLI > config > file name
    cfg = load_config(config, cfg_options, work_dir, launcher)

    cfg.load_from = checkpoint
    if experiment_name is not None:
        cfg.experiment_name = experiment_name

    if show or show_dir:
        cfg = trigger_visualization_hook(
            cfg, show=show, show_dir=show_dir, wait_time=wait_time)

    if tta:
        for key in ('tta_model', 'tta_pipeline'):
            if cfg.get(key) is None:
                raise KeyError(f'--tta needs `{key}` in the config (see '
                               'configs/_base_/datasets/voc12_aug_seg.py)')
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model

    # enable automatic-mixed-precision test: mmengine's TestLoop runs each
    # test step under autocast (CUDA when available, else CPU)
    if amp:
        test_cfg = cfg.get('test_cfg') or dict(type='TestLoop')
        test_cfg['fp16'] = True
        cfg.test_cfg = test_cfg

    # add output_dir in metric; the pseudo labels' writer
    if out is not None:
        add_output_dir(cfg, out, save_cams=save_cams)
    elif save_cams:
        raise ValueError('--save-cams needs --out DIR')

    # one export per --out dir
    with (lock_dir(out, cfg.launcher, what='output dir (--out)')
          if out is not None else contextlib.nullcontext()):
        runner = build_runner(cfg, check_load_from=True)
        metrics = runner.test()
        if metrics_json and is_main_process():
            write_json_atomic(metrics_json, metrics)
        failed = num_failed(metrics)
        if failed and is_main_process():
            print_log(
                f'{failed} images failed (named above) and have no output; '
                'everything else is written. Fix the cause and run the same '
                'command again (it writes every image again).',
                logger='current',
                level=logging.ERROR)
        finish_distributed()
    return metrics
