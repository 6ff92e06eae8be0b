# The whole WSSS pipeline as a chain of the standard tools:
#
#   python tools/run_pipeline.py STAGE1_CONFIG STAGE2_CONFIG --work-dir DIR
#
#   data     SynthVOC generated when the data root is empty (SynthVOC only)
#   stage1   tools/train.py STAGE1                           -> DIR/stage1
#   pseudo   tools/test.py STAGE1 CKPT --out DIR/pseudo      (train_aug labels,
#                                                             scores on train)
#   stage2   tools/train.py STAGE2 --cfg-options <pseudo-label dir>
#   val      tools/test.py STAGE2 CKPT --cfg-options model.test_cfg.crf=None
#   val_crf  tools/test.py STAGE2 CKPT                       (the config's CRF)
#
# Every step is one standard command, printed before it runs and logged to
# DIR/logs/<step>.log, so any step can be re-run alone. A finished step
# leaves DIR/steps/<step>.json and is skipped on the next run (resumable); a
# stage-1/2 training that was killed resumes from its last checkpoint. A
# failing step stops the pipeline with its name and log. DIR/summary.json
# gathers the metrics and the wall time of each step. `--until pseudo` stops
# after the pseudo labels (stage 1 only); `--gpus 4` trains through
# tools/dist_train.sh.
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import time
from typing import List, Optional

from mmengine.config import Config

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)

from rca_mm.utils.fileio import write_json_atomic  # noqa: E402

# The key of the stage-2 config that names the pseudo-label directory.
PSEUDO_LABEL_KEY = 'train_dataloader.dataset.data_prefix.seg_map_path'


STEPS = ('stage1', 'pseudo', 'stage2', 'val', 'val_crf')


class StepFailed(RuntimeError):
    """A pipeline step exited non-zero."""


class StopPipeline(Exception):
    """``--until`` reached."""


class Pipeline:
    """Runs the steps in order, skipping the finished ones.

    Args:
        work_dir (str): where every step writes; markers in ``steps/``.
        python (str): the interpreter for the tools.
        launcher_gpus (int): > 1 runs the training steps through
            ``tools/dist_train.sh`` with that many processes.
    """

    def __init__(self, work_dir: str, python: str, launcher_gpus: int):
        self.work_dir = osp.abspath(work_dir)
        self.python = python
        self.gpus = launcher_gpus
        os.makedirs(osp.join(self.work_dir, 'logs'), exist_ok=True)

    def marker(self, step: str) -> str:
        return osp.join(self.work_dir, 'steps', f'{step}.json')

    def done(self, step: str) -> Optional[dict]:
        """The record of a finished step, or None."""
        if not osp.exists(self.marker(step)):
            return None
        with open(self.marker(step)) as f:
            return json.load(f)

    def run(self, step: str, cmd: List[str], record: Optional[dict] = None
            ) -> dict:
        """Run ``cmd`` for ``step`` unless it is already done."""
        finished = self.done(step)
        if finished is not None:
            print(f'[pipeline] {step}: done before, skipped '
                  f'({finished["seconds"]:.0f} s then)')
            return finished
        log = osp.join(self.work_dir, 'logs', f'{step}.log')
        print(f'[pipeline] {step}: {" ".join(cmd)}\n'
              f'[pipeline]   log: {log}', flush=True)
        start = time.time()
        with open(log, 'w') as f:
            proc = subprocess.run(
                cmd, cwd=REPO, stdout=f, stderr=subprocess.STDOUT,
                env=dict(os.environ, PYTHON=self.python))
        seconds = time.time() - start
        if proc.returncode != 0:
            with open(log) as f:
                tail = f.read()[-3000:]
            raise StepFailed(
                f'step "{step}" failed (exit {proc.returncode}) after '
                f'{seconds:.0f} s; log: {log}\n--- last lines ---\n{tail}')
        result = dict(record or {}, seconds=seconds, command=cmd)
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

    def metrics_path(self, step: str) -> str:
        return osp.join(self.work_dir, step, 'metrics.json')

    def metrics(self, step: str) -> dict:
        """The metrics of a finished test step, else ``{}``."""
        if self.done(step) is None or not osp.exists(self.metrics_path(step)):
            return {}
        with open(self.metrics_path(step)) as f:
            return json.load(f)

    def step_seconds(self) -> dict:
        """Wall time of every finished step, from its marker."""
        records = {step: self.done(step) for step in ('data', ) + STEPS}
        return {
            step: record['seconds']
            for step, record in records.items() if record is not None
        }

    def test(self, step: str, config: str, checkpoint: str,
             options: List[str], out: Optional[str] = None) -> None:
        """Test; the metrics go to ``STEP/metrics.json``."""
        metrics = self.metrics_path(step)
        cmd = [self.python, 'tools/test.py', config, checkpoint,
               '--work-dir', osp.join(self.work_dir, step),
               '--metrics-json', metrics]
        if out:
            cmd += ['--out', out]
        if options:
            cmd += ['--cfg-options'] + options
        self.run(step, cmd)


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


def pick(metrics: dict, *names: str) -> Optional[float]:
    """The first metric whose key ends with one of ``names``."""
    for name in names:
        for key, value in metrics.items():
            if key == name or key.endswith('/' + name):
                return float(value)
    return None


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
        '--gpus', type=int, default=1,
        help='processes per training step (tools/dist_train.sh when > 1)')
    parser.add_argument(
        '--until', choices=STEPS, default=STEPS[-1],
        help='stop after this step (e.g. pseudo: stage 1 only)')
    parser.add_argument(
        '--stage1-cfg-options', nargs='+', default=[],
        help='extra key=value overrides of the stage-1 steps')
    parser.add_argument(
        '--stage2-cfg-options', nargs='+', default=[],
        help='extra key=value overrides of the stage-2 steps')
    return parser.parse_args()


def main():
    args = parse_args()
    pipe = Pipeline(args.work_dir, sys.executable, args.gpus)
    cfg1 = Config.fromfile(args.stage1)
    root = osp.abspath(args.data_root or cfg1.train_dataloader.dataset.data_root)
    data_opts = []
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        data_opts.append(f'{loader}.dataset.data_root={root}')
    seed = [f'randomness.seed={args.seed}']

    start = time.time()
    try:
        if not osp.isdir(root) or not os.listdir(root):
            if 'synthvoc' not in cfg1.train_dataloader.dataset.type.lower():
                raise StepFailed(
                    f'data root {root} is empty; only SynthVOC is generated '
                    'by the pipeline (see docs/datasets.md for VOC and COCO)')
            pipe.run('data', [
                sys.executable, 'tools/dataset_converters/synthvoc.py',
                '--out', root, '--seed', '0'
            ])
        opts1 = data_opts + args.stage1_cfg_options
        opts2 = data_opts + args.stage2_cfg_options
        ckpt1 = pipe.train('stage1', args.stage1, opts1 + seed)
        if args.until == 'stage1':
            raise StopPipeline
        pseudo_dir = osp.join(pipe.work_dir, 'pseudo')
        if cfg1.get('custom_hooks') and any(
                h.get('type') == 'OAAAccumulationHook'
                for h in cfg1.custom_hooks):
            # OAA: the CAMs are the maps accumulated during training.
            store = osp.join(pipe.work_dir, 'stage1', 'oaa_store')
            opts1 = opts1 + [f'model.test_cfg.oaa_store={store}']
        pipe.test('pseudo', args.stage1, ckpt1, opts1,
                           out=pseudo_dir)
        if args.until == 'pseudo':
            raise StopPipeline
        labels = osp.join(pseudo_dir, 'pseudo_labels')
        ckpt2 = pipe.train('stage2', args.stage2,
                           opts2 + seed + [f'{PSEUDO_LABEL_KEY}={labels}'])
        if args.until == 'stage2':
            raise StopPipeline
        pipe.test('val', args.stage2, ckpt2,
                        opts2 + ['model.test_cfg.crf=None'])
        if args.until != 'val':
            pipe.test('val_crf', args.stage2, ckpt2, opts2)
    except StopPipeline:
        pass
    except StepFailed as err:
        print(f'[pipeline] stopped: {err}', file=sys.stderr)
        sys.exit(1)

    # Read back from disk: a re-run with an earlier --until keeps the
    # numbers of the steps that finished before.
    pseudo, val, val_crf = (pipe.metrics(s) for s in ('pseudo', 'val',
                                                      'val_crf'))
    summary = dict(
        stage1_config=args.stage1,
        stage2_config=args.stage2,
        data_root=root,
        seed=args.seed,
        pseudo_label_miou_full=pick(pseudo, 'mIoU_full'),
        pseudo_label_miou_confident=pick(pseudo, 'mIoU_confident'),
        pseudo_label_coverage=pick(pseudo, 'coverage'),
        seg_val_miou=pick(val, 'mIoU'),
        seg_val_miou_crf=pick(val_crf, 'mIoU'),
        step_seconds=pipe.step_seconds(),
        total_seconds=time.time() - start)
    write_json_atomic(osp.join(pipe.work_dir, 'summary.json'), summary)
    print(json.dumps(summary, indent=2))


if __name__ == '__main__':
    main()
