"""A reference of every RCA config: the built model and a few training steps.

For each RCA config (``configs/rca/*.py``, ``configs/rca/ablations/*.py``,
``configs/synthvoc/rca*.py``, ``configs/synthvoc/ablations/*.py``) it
records the built model's ``state_dict`` keys and shapes; for the SynthVOC
ones it also trains 3 epochs of 2 steps on 8 tiny images (seed 0, one
thread, every region written to the bank) and records every logged loss of
every step (``repr`` of the float: to the last digit), the ``state_dict``
shapes after training and a SHA-256 of its tensors. Two references are
equal when the configs build the same models and train them identically.

Not collected by pytest (about a minute)::

    python tests/test_configs/rca_reference.py write REF.json
    python tests/test_configs/rca_reference.py check REF.json
"""
import argparse
import glob
import hashlib
import json
import os.path as osp
import sys
import tempfile

import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PATTERNS = ('configs/rca/*.py', 'configs/rca/ablations/*.py',
            'configs/synthvoc/rca*.py', 'configs/synthvoc/ablations/*.py')


def configs():
    return sorted(
        osp.relpath(p, REPO) for pattern in PATTERNS
        for p in glob.glob(osp.join(REPO, pattern)))


def shapes(state):
    return {k: list(v.shape) for k, v in state.items()}


def digest(state):
    sha = hashlib.sha256()
    for key in sorted(state):
        sha.update(key.encode())
        sha.update(state[key].detach().cpu().contiguous().numpy().tobytes())
    return sha.hexdigest()


def built(config):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from rca_mm.registry import MODELS
    cfg = Config.fromfile(osp.join(REPO, config))
    init_default_scope('rca_mm')
    return shapes(MODELS.build(cfg.model).state_dict())


def trained(config, data_root, work_dir):
    from mmengine.hooks import Hook
    from mmengine.runner import Runner

    from rca_mm.registry import HOOKS
    from rca_mm.testing.tiny_runner import tiny_stage1_cfg

    losses = []

    @HOOKS.register_module(name='_RecordLosses', force=True)
    class _RecordLosses(Hook):
        priority = 'LOWEST'

        def after_train_iter(self, runner, batch_idx, data_batch=None,
                             outputs=None):
            losses.append({
                k: repr(float(v.detach()) if torch.is_tensor(v) else v)
                for k, v in sorted(outputs.items())
            })

    cfg = tiny_stage1_cfg(
        osp.join(REPO, config), data_root, work_dir, max_epochs=3,
        name=osp.basename(config)[:-3],
        extra_hooks=[dict(type='_RecordLosses')])
    cfg.model.head.gate_threshold = 0.0
    runner = Runner.from_cfg(cfg)
    model = runner.train()
    state = model.state_dict()
    return dict(losses=losses, trained=shapes(state), sha256=digest(state))


def reference():
    from rca_mm.testing.tiny_runner import write_tiny_synthvoc
    torch.set_num_threads(1)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = write_tiny_synthvoc(osp.join(tmp, 'synthvoc'))
        for config in configs():
            entry = dict(built=built(config))
            if config.startswith('configs/synthvoc/'):
                entry.update(
                    trained(config, root,
                            osp.join(tmp, osp.basename(config)[:-3])))
            out[config] = entry
            print(config, entry.get('losses', [{}])[-1:], flush=True)
    return out


def compare(old, new):
    """Lines naming every difference of two references."""
    lines = []
    for config in sorted(set(old) | set(new)):
        if config not in old or config not in new:
            lines.append(f'{config}: only in the '
                         f'{"new" if config in new else "old"} reference')
            continue
        for part in sorted(set(old[config]) | set(new[config])):
            a, b = old[config].get(part), new[config].get(part)
            if a == b:
                continue
            if isinstance(a, dict) and isinstance(b, dict):
                for key in sorted(set(a) | set(b)):
                    if a.get(key) != b.get(key):
                        lines.append(f'{config}: {part}[{key}]: '
                                     f'{a.get(key)} -> {b.get(key)}')
            else:
                lines.append(f'{config}: {part} differs')
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('mode', choices=['write', 'check'])
    parser.add_argument('file')
    args = parser.parse_args()
    new = reference()
    if args.mode == 'write':
        with open(args.file, 'w') as f:
            json.dump(new, f, indent=1, sort_keys=True)
        return 0
    with open(args.file) as f:
        old = json.load(f)
    lines = compare(old, new)
    print('\n'.join(lines) or f'identical: {len(new)} configs')
    return 1 if lines else 0


if __name__ == '__main__':
    sys.exit(main())
