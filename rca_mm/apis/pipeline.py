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
the trainings run as ``tools/dist_train.sh`` processes.
"""
import argparse
import io
import json
import os
import os.path as osp
import platform
import re
import subprocess
import sys
import time
import traceback
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.config import Config, DictAction

from rca_mm.engine.config_checks import resolve_train_batch_size
from rca_mm.fileio import write_json_atomic
from rca_mm.utils.benchmark import cpu_model
from .publish import publish_checkpoint, release_run
from .test import num_failed, run_test
from .train import run_train

# The repository root: tools/dist_train.sh, for trainings on several GPUs.
REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

# The key of the stage-2 config that names the pseudo-label directory.
PSEUDO_LABEL_KEY = 'train_dataloader.dataset.data_prefix.seg_map_path'

STEPS = ('stage1', 'pseudo', 'stage2', 'val', 'val_crf')
PRETRAIN_STEPS = ('synthnet', 'pretrain', 'pretrain_val', 'pretrain_export')

# The SynthVOC runs and tables (load_experiments).
SYNTHVOC_EXPERIMENTS = 'configs/synthvoc/experiments.yaml'

# What the terminal shows of a step's output: mmengine's logger lines
# (condensed to the loop, position, eta and loss) and progress bars.
_LOGGER = re.compile(
    r'- INFO - ((?:Epoch|Iter)\((\w+)\)\s*(?:\[[^\]]*\])+)(.*)')
_BAR = re.compile(r'^\[[> ]*\] \d+/\d+')
PROGRESS_EVERY = 10.0  # seconds between two progress lines of a step


class StepFailed(RuntimeError):
    """A pipeline step failed."""


class _StopPipeline(Exception):
    """``until`` reached."""


class _StepOutput(io.TextIOBase):
    """Where ``sys.stdout`` and ``sys.stderr`` write while a step runs in
    this process: every line to the step's log, its progress condensed to
    the terminal (one line every ``PROGRESS_EVERY`` seconds, every result
    line).

    The loggers made during the step keep writing here after it; once
    :meth:`close` is called their lines go on to whatever ``sys.stdout`` is
    then (the next step's, or the terminal).
    """

    def __init__(self, step: str, log, terminal):
        self.step = step
        self.log = log
        self.terminal = terminal
        self.last = 0.0
        self.pending = ''

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if self.log is None:
            target = sys.stdout if sys.stdout is not self else self.terminal
            return target.write(text)
        self.pending += text
        *lines, self.pending = re.split(r'\r\n|\r|\n', self.pending)
        for line in lines:
            self._line(line)
        return len(text)

    def _line(self, line: str) -> None:
        self.log.write(line + '\n')
        self.log.flush()
        shown = condense(line)
        if shown is None:
            return
        shown, result = shown
        if result or time.time() - self.last >= PROGRESS_EVERY:
            print(
                f'[pipeline]   {self.step} | {shown}',
                file=self.terminal,
                flush=True)
            self.last = time.time()

    def flush(self) -> None:
        if self.log is not None:
            self.log.flush()

    def close(self) -> None:
        if self.log is not None and self.pending:
            self._line(self.pending)
        self.log = None


class Pipeline:
    """Runs the steps in order, skipping the finished ones.

    Args:
        work_dir (str): where every step writes; markers in ``steps/``.
        gpus (int): > 1 runs the training steps through
            ``tools/dist_train.sh`` with that many processes. Default: 1.
    """

    def __init__(self, work_dir: str, *, gpus: int = 1):
        self.work_dir = osp.abspath(work_dir)
        self.gpus = gpus
        os.makedirs(osp.join(self.work_dir, 'logs'), exist_ok=True)

    def marker(self, step: str) -> str:
        return osp.join(self.work_dir, 'steps', f'{step}.json')

    def done(self, step: str) -> Optional[dict]:
        """The record of a finished step, or None."""
        if not osp.exists(self.marker(step)):
            return None
        with open(self.marker(step)) as f:
            return json.load(f)

    def run(self,
            step: str,
            command: List[str],
            func: Optional[Callable[[], None]] = None,
            record: Optional[dict] = None) -> dict:
        """Run ``step`` unless it is already done.

        Args:
            step (str): the step's name (its log, marker and work dir).
            command (list[str]): the step as a command line, printed and
                recorded; run as a process of its own when ``func`` is None.
            func (callable, optional): runs the step in this process
                (``command`` then says how to run it alone). Default: None.
            record (dict, optional): more to keep in the marker.

        Returns:
            dict: the step's record (``seconds``, ``command``, ``machine``).
        """
        finished = self.done(step)
        if finished is not None:
            print(f'[pipeline] {step}: done before, skipped '
                  f'({finished["seconds"]:.0f} s then)')
            return finished
        log = osp.join(self.work_dir, 'logs', f'{step}.log')
        print(
            f'[pipeline] {step}: {" ".join(command)}\n'
            f'[pipeline]   log: {log}',
            flush=True)
        start = time.time()
        if func is None:
            returncode = run_logged(step, command, log)
            failure = f'exit {returncode}' if returncode else None
        else:
            failure = call_logged(step, func, log)
        seconds = time.time() - start
        if failure is not None:
            with open(log) as f:
                tail = f.read()[-3000:]
            raise StepFailed(
                f'step "{step}" failed ({failure}) after {seconds:.0f} s; '
                f'log: {log}\n--- last lines ---\n{tail}')
        result = dict(
            record or {},
            seconds=seconds,
            command=command,
            machine=machine_info())
        write_json_atomic(self.marker(step), result)
        print(f'[pipeline] {step}: {seconds:.0f} s', flush=True)
        return result

    def train(self, step: str, config: str, options: List[str]) -> str:
        """Train (resuming a killed run); returns the last checkpoint."""
        work = osp.join(self.work_dir, step)
        args = [config]
        if self.gpus > 1:
            command = ['bash', osp.join(REPO, 'tools', 'dist_train.sh')]
            args.append(str(self.gpus))
        else:
            command = [sys.executable, 'tools/train.py']
        args += ['--work-dir', work, '--resume']
        if options:
            args += ['--cfg-options'] + options
        if self.gpus > 1:
            self.run(step, command + args)
        else:
            self.run(
                step, command + args, lambda: run_train(
                    config,
                    work_dir=work,
                    resume=True,
                    cfg_options=parse_options(options),
                    experiment_name=experiment_name(config, step)))
        return last_checkpoint(work)

    def test(self,
             step: str,
             config: str,
             checkpoint: str,
             options: List[str],
             out: Optional[str] = None) -> None:
        """Test; the metrics go to ``STEP/metrics.json``."""
        work = osp.join(self.work_dir, step)
        metrics = self.metrics_path(step)
        command = [
            sys.executable, 'tools/test.py', config, checkpoint, '--work-dir',
            work, '--metrics-json', metrics
        ]
        if out:
            command += ['--out', out]
        if options:
            command += ['--cfg-options'] + options

        def test_step() -> None:
            result = run_test(
                config,
                checkpoint,
                work_dir=work,
                out=out,
                metrics_json=metrics,
                cfg_options=parse_options(options),
                experiment_name=experiment_name(config, step))
            if num_failed(result):
                raise StepFailed(f'{num_failed(result)} images could not be '
                                 'written (named above)')

        self.run(step, command, test_step)

    def release(self,
                configs: Dict[str, str],
                log_steps: Sequence[str],
                summary: Optional[str] = None) -> dict:
        """Publish the checkpoints of the finished training steps, with the
        logs of ``log_steps`` and the summary, under ``WORK_DIR/release/``
        (:func:`rca_mm.apis.publish.release_run`).

        Args:
            configs (dict[str, str]): training step -> its config; steps
                not finished are left out.
            log_steps (Sequence[str]): the steps whose logs go along.
            summary (str, optional): the summary file. Default: None.

        Returns:
            dict: the release manifest.
        """
        models = [
            (step, config, last_checkpoint(osp.join(self.work_dir, step)))
            for step, config in configs.items() if self.done(step) is not None
        ]
        return release_run(self.work_dir, models, log_steps, summary)

    def metrics_path(self, step: str) -> str:
        return osp.join(self.work_dir, step, 'metrics.json')

    def metrics(self, step: str) -> dict:
        """The metrics of a finished test step, else ``{}``."""
        if self.done(step) is None or not osp.exists(self.metrics_path(step)):
            return {}
        with open(self.metrics_path(step)) as f:
            return json.load(f)

    def step_seconds(self, steps: Sequence[str]) -> dict:
        """Wall time of every finished step, from its marker."""
        records = {step: self.done(step) for step in steps}
        return {
            step: record['seconds']
            for step, record in records.items() if record is not None
        }


def experiment_name(config: str, step: str) -> str:
    """A Runner's experiment name for ``step``: the config name, the step
    and the time, so that the Runners of two steps in one process (even in
    one second) keep their own logger, message hub and visualizer."""
    name = osp.splitext(osp.basename(config))[0]
    return f'{name}_{step}_{time.strftime("%Y%m%d_%H%M%S")}'


def parse_options(options: Sequence[str]) -> Optional[dict]:
    """``key=value`` strings as ``--cfg-options`` parses them."""
    if not options:
        return None
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(['--cfg-options'] + list(options)).cfg_options


def check_total_batches(trainings: Sequence[Tuple[str, List[str]]],
                        gpus: int) -> None:
    """Refuse, before any step runs, a training whose recipe's total batch
    cannot be kept on ``gpus`` processes.

    Each training step applies the same rule
    (:func:`~rca_mm.engine.config_checks.resolve_train_batch_size`), but
    only when it starts: without this check a stage-2 config refused on
    ``--gpus 4`` (DeepLabV2's total of 10) would stop the pipeline after
    stage 1 has trained.

    Args:
        trainings (Sequence[tuple]): ``(config, cfg_options)`` of each
            training step, the options as ``key=value`` strings.
        gpus (int): processes per training step.

    Raises:
        StepFailed: naming the config and the keys to set.
    """
    for config, options in trainings:
        cfg = Config.fromfile(config)
        given = parse_options(options) or {}
        cfg.merge_from_dict(given)
        try:
            resolve_train_batch_size(
                cfg,
                gpus,
                batch_size_given='train_dataloader.batch_size' in given,
                config=config)
        except ValueError as err:
            raise StepFailed(f'{err} (pass it with --stage1-cfg-options or '
                             '--stage2-cfg-options)') from None


def machine_info() -> dict:
    """What a run's numbers depend on besides the code, config and seed.

    A CPU run is deterministic for a seed on one machine (the same command
    repeats every metric to the last digit), but not across machines:
    another CPU model, torch build, thread count or vector instruction set
    (``cpu_capability``: the kernels torch dispatches to) sums floats in
    another order, and training turns that rounding into a different run.
    ``summary.json`` and every step's record keep this, so that two runs
    can be told apart from two machines.

    Returns:
        dict: ``cpu`` (model name), ``cpu_count``, ``platform``, ``python``,
        ``torch`` (version), ``torch_cuda`` (the CUDA version torch was
        built with, None for a CPU build), ``torch_threads``
        (``torch.get_num_threads()``), ``cpu_capability``
        (``torch.backends.cpu.get_cpu_capability()``) and ``gpu`` (the
        first CUDA device's name, None without one).
    """
    gpu = (
        torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
    return dict(
        cpu=cpu_model(),
        cpu_count=os.cpu_count(),
        platform=platform.platform(),
        python=platform.python_version(),
        torch=torch.__version__,
        torch_cuda=torch.version.cuda,
        torch_threads=torch.get_num_threads(),
        cpu_capability=torch.backends.cpu.get_cpu_capability(),
        gpu=gpu)


def condense(line: str) -> Optional[Tuple[str, bool]]:
    """What the terminal shows of one output line of a step, and whether it
    is a result (always shown, not throttled); None for other lines.

    A logger line keeps its loop and position (``Epoch(train) [2][25/125]``)
    with the eta and the loss, or, for a validation or test result, all its
    metrics; a progress bar is kept as it is.
    """
    match = _LOGGER.search(line)
    if match:
        where, mode, rest = match.groups()
        if mode != 'train' and 'eta:' not in rest:
            return f'{where} {rest.strip()}', True
        keep = re.findall(r'\b(eta|loss): (\S+)', rest)
        return ' '.join([where] + [f'{k} {v}' for k, v in keep]), False
    if _BAR.match(line.strip()):
        return line.strip(), False
    return None


def call_logged(step: str, func: Callable[[], None],
                log: str) -> Optional[str]:
    """Call ``func`` with its output (``sys.stdout``, ``sys.stderr``) in
    ``log`` and its progress on the terminal; returns None, or what went
    wrong (its traceback is in the log)."""
    terminal, errors = sys.stdout, sys.stderr
    with open(log, 'w') as f:
        output = _StepOutput(step, f, terminal)
        sys.stdout = sys.stderr = output
        try:
            func()
        except Exception as err:  # the step fails, not the pipeline
            traceback.print_exc()
            return type(err).__name__
        finally:
            output.close()
            sys.stdout, sys.stderr = terminal, errors
    return None


def run_logged(step: str, cmd: List[str], log: str) -> int:
    """Run ``cmd``, writing its output to ``log`` and its progress (one
    condensed line every ``PROGRESS_EVERY`` seconds, every result line) to
    the terminal; returns the exit code."""
    with open(log, 'w') as f:
        output = _StepOutput(step, f, sys.stdout)
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, PYTHON=sys.executable, PYTHONUNBUFFERED='1'),
            text=True,
            errors='replace')
        for line in proc.stdout:  # universal newlines: '\r' ends a line too
            output.write(line if line.endswith('\n') else line + '\n')
        output.close()
    return proc.wait()


def last_checkpoint(work_dir: str) -> str:
    """The checkpoint named in mmengine's ``last_checkpoint`` file.

    mmengine records an absolute path; when the work dir has been moved
    since, the checkpoint of the same name inside ``work_dir`` is used.
    """
    path = osp.join(work_dir, 'last_checkpoint')
    if not osp.exists(path):
        raise StepFailed(f'{work_dir} has no last_checkpoint: the training '
                         'step wrote no checkpoint')
    with open(path) as f:
        recorded = f.read().strip()
    moved = osp.join(work_dir, osp.basename(recorded))
    if not osp.exists(recorded) and osp.exists(moved):
        return moved
    return recorded


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


def option_value(options: Sequence[str], key: str) -> Optional[str]:
    """The value that ``--cfg-options``-style ``key=value`` strings give
    ``key`` (the last one wins, as in mmengine), else None."""
    found = None
    for option in options:
        name, _, value = option.partition('=')
        if name == key:
            found = value
    return found


def backbone_checkpoint(config: str, options: Sequence[str]) -> Optional[str]:
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
        root = osp.abspath(
            option_value(options, 'train_dataloader.dataset.data_root')
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
