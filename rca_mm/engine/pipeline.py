"""A resumable chain of tool commands: the machinery of
``tools/run_pipeline.py``.

Each step is one command, run from the repository root with its output in
``WORK_DIR/logs/<step>.log`` and its progress condensed on the terminal. A
finished step leaves ``WORK_DIR/steps/<step>.json`` (atomically) and is
skipped when the pipeline runs again; a failing step raises
:class:`StepFailed` with its name and the end of its log.
"""
import argparse
import json
import os
import os.path as osp
import platform
import re
import subprocess
import time
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.config import Config, DictAction

from rca_mm.engine.config_checks import resolve_train_batch_size
from rca_mm.fileio import write_json_atomic
from rca_mm.utils.benchmark import cpu_model

# What the terminal shows of a step's output: mmengine's logger lines
# (condensed to the loop, position, eta and loss) and progress bars.
_LOGGER = re.compile(
    r'- INFO - ((?:Epoch|Iter)\((\w+)\)\s*(?:\[[^\]]*\])+)(.*)')
_BAR = re.compile(r'^\[[> ]*\] \d+/\d+')
PROGRESS_EVERY = 10.0  # seconds between two progress lines of a step


class StepFailed(RuntimeError):
    """A pipeline step exited non-zero."""


class Pipeline:
    """Runs the steps in order, skipping the finished ones.

    Args:
        work_dir (str): where every step writes; markers in ``steps/``.
        python (str): the interpreter for the tools.
        launcher_gpus (int): > 1 runs the training steps through
            ``tools/dist_train.sh`` with that many processes.
        repo (str): the repository root, where the commands run (they
            name ``tools/...`` relative to it).
    """

    def __init__(self, work_dir: str, python: str, launcher_gpus: int,
                 repo: str):
        self.work_dir = osp.abspath(work_dir)
        self.python = python
        self.gpus = launcher_gpus
        self.repo = repo
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
            cmd: List[str],
            record: Optional[dict] = None) -> dict:
        """Run ``cmd`` for ``step`` unless it is already done."""
        finished = self.done(step)
        if finished is not None:
            print(f'[pipeline] {step}: done before, skipped '
                  f'({finished["seconds"]:.0f} s then)')
            return finished
        log = osp.join(self.work_dir, 'logs', f'{step}.log')
        print(
            f'[pipeline] {step}: {" ".join(cmd)}\n'
            f'[pipeline]   log: {log}',
            flush=True)
        start = time.time()
        returncode = run_logged(step, cmd, log, self.python, self.repo)
        seconds = time.time() - start
        if returncode != 0:
            with open(log) as f:
                tail = f.read()[-3000:]
            raise StepFailed(
                f'step "{step}" failed (exit {returncode}) after '
                f'{seconds:.0f} s; log: {log}\n--- last lines ---\n{tail}')
        result = dict(
            record or {}, seconds=seconds, command=cmd, machine=machine_info())
        write_json_atomic(self.marker(step), result)
        print(f'[pipeline] {step}: {seconds:.0f} s', flush=True)
        return result

    def train(self, step: str, config: str, options: List[str]) -> str:
        """Train (resuming a killed run); returns the last checkpoint."""
        work = osp.join(self.work_dir, step)
        if self.gpus > 1:
            cmd = ['bash', 'tools/dist_train.sh', config, str(self.gpus)]
        else:
            cmd = [self.python, 'tools/train.py', config]
        cmd += ['--work-dir', work, '--resume']
        if options:
            cmd += ['--cfg-options'] + options
        self.run(step, cmd)
        return last_checkpoint(work)

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
        from rca_mm.apis.publish import release_run
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

    def test(self,
             step: str,
             config: str,
             checkpoint: str,
             options: List[str],
             out: Optional[str] = None) -> None:
        """Test; the metrics go to ``STEP/metrics.json``."""
        metrics = self.metrics_path(step)
        cmd = [
            self.python, 'tools/test.py', config, checkpoint, '--work-dir',
            osp.join(self.work_dir, step), '--metrics-json', metrics
        ]
        if out:
            cmd += ['--out', out]
        if options:
            cmd += ['--cfg-options'] + options
        self.run(step, cmd)


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
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    for config, options in trainings:
        cfg = Config.fromfile(config)
        given = {}
        if options:
            given = parser.parse_args(['--cfg-options'] +
                                      list(options)).cfg_options
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


def run_logged(step: str, cmd: List[str], log: str, python: str,
               cwd: str) -> int:
    """Run ``cmd`` in ``cwd``, writing its output to ``log`` and its progress
    (one condensed line every ``PROGRESS_EVERY`` seconds, every result line)
    to the terminal; returns the exit code."""
    last = 0.0
    with open(log, 'w') as f:
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, PYTHON=python, PYTHONUNBUFFERED='1'),
            text=True,
            errors='replace')
        for line in proc.stdout:  # universal newlines: '\r' ends a line too
            f.write(line if line.endswith('\n') else line + '\n')
            f.flush()
            shown = condense(line)
            if shown is None:
                continue
            shown, result = shown
            if result or time.time() - last >= PROGRESS_EVERY:
                print(f'[pipeline]   {step} | {shown}', flush=True)
                last = time.time()
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
