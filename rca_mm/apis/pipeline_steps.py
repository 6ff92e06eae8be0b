"""The steps of a resumable pipeline: each run once, in this process
(:func:`~rca_mm.apis.run_train`, :func:`~rca_mm.apis.run_test`, or any
function) or as a command of its own, with its record, log and condensed
progress.

.. code:: text

    Pipeline(work_dir).run(step, command, func)
      WORK_DIR/steps/<step>.json   the record of a finished step (seconds,
                                   command, machine); the step is skipped
                                   when it exists
      WORK_DIR/logs/<step>.log     the step's output (stdout and stderr)
      terminal                     the command that does the step alone,
                                   its progress (one line every
                                   PROGRESS_EVERY seconds) and results
    Pipeline.train / .test         run_train / run_test as steps
                                   (tools/dist_train.sh with gpus > 1)

A failing step raises :class:`StepFailed` with its name and the end of its
log.
"""
import argparse
import gc
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
from .publish import release_run
from .test import num_failed, run_test
from .train import run_train

# The repository root: tools/dist_train.sh, for trainings on several GPUs.
REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

# What the terminal shows of a step's output: mmengine's logger lines
# (condensed to the loop, position, eta and loss) and progress bars.
_LOGGER = re.compile(
    r'- INFO - ((?:Epoch|Iter)\((\w+)\)\s*(?:\[[^\]]*\])+)(.*)')
_BAR = re.compile(r'^\[[> ]*\] \d+/\d+')
PROGRESS_EVERY = 10.0  # seconds between two progress lines of a step


class StepFailed(RuntimeError):
    """A pipeline step failed."""


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
            # A finished Runner and its loops refer to each other: free its
            # model, optimizer and bank (GPU memory) before the next step.
            gc.collect()
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
