"""A reference of every RCA config: the built model and a few training steps.

For each RCA config (``configs/rca/*.py``, ``configs/rca/ablations/*.py``,
``configs/synthvoc/rca*.py``, ``configs/synthvoc/ablations/*.py``) it
records the built model's ``state_dict`` keys and shapes; for the SynthVOC
ones it also trains 3 epochs of 2 steps on 8 tiny images (seed 0, one
thread, every region written to the bank) and records every logged loss of
every step (``repr`` of the float: to the last digit), the ``state_dict``
shapes after training and a SHA-256 of its tensors. Two references are
equal when the configs build the same models and train them identically.

``test_configs_equal_the_reference`` compares today's configs with the
committed ``rca_reference.json`` next to this file, in a process with the
kernels pinned (``tests.conftest.PINNED_KERNELS``: the losses and digests
are exact for AVX2 kernels on one thread). When a change is meant to alter
them, write the reference again and say in the commit why it changed::

    env ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 \
        MKL_ENABLE_INSTRUCTIONS=AVX2 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 \
        python tests/test_configs/test_rca_reference.py write \
        tests/test_configs/rca_reference.json
    python tests/test_configs/test_rca_reference.py check REF.json
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
REFERENCE = osp.join(REPO, 'tests', 'test_configs', 'rca_reference.json')
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

        def after_train_iter(self,
                             runner,
                             batch_idx,
                             data_batch=None,
                             outputs=None):
            losses.append({
                k:
                repr(float(v.detach()) if torch.is_tensor(v) else v)
                for k, v in sorted(outputs.items())
            })

    cfg = tiny_stage1_cfg(
        osp.join(REPO, config),
        data_root,
        work_dir,
        max_epochs=3,
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
                            osp.join(tmp,
                                     osp.basename(config)[:-3])))
            out[config] = entry
            print(config, entry.get('losses', [{}])[-1:], flush=True)
    return out


# The parts of an entry that are state_dict shape tables: stored once per
# distinct table in the file (the ablations share their models).
TABLES = ('built', 'trained')


def pack(ref):
    """The file's form of a reference: each distinct shape table once,
    under ``state_dict_shapes``, named by a digest of its contents."""
    tables, configs_ = {}, {}
    for config, entry in ref.items():
        entry = dict(entry)
        for part in TABLES:
            if part in entry:
                name = hashlib.sha256(
                    json.dumps(entry[part],
                               sort_keys=True).encode()).hexdigest()[:16]
                tables[name] = entry[part]
                entry[part] = name
        configs_[config] = entry
    return dict(configs=configs_, state_dict_shapes=tables)


def unpack(packed):
    """The reference that :func:`pack` stored."""
    tables = packed['state_dict_shapes']
    return {
        config: {
            part: tables[value] if part in TABLES else value
            for part, value in entry.items()
        }
        for config, entry in packed['configs'].items()
    }


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
        from rca_mm.fileio import atomic_open
        with atomic_open(args.file, 'w') as f:
            json.dump(pack(new), f, indent=0, sort_keys=True)
            f.write('\n')
        return 0
    with open(args.file) as f:
        old = unpack(json.load(f))
    lines = compare(old, new)
    print('\n'.join(lines) or f'identical: {len(new)} configs')
    return 1 if lines else 0


def test_pack_keeps_every_table_once():
    ref = {
        'a.py': dict(built={'w': [2, 3]}, trained={'w': [2, 3]}),
        'b.py': dict(built={'w': [2, 3]}, losses=[{
            'loss': '0.5'
        }]),
        'c.py': dict(built={
            'w': [4, 3],
            'b': [4]
        }),
    }
    packed = json.loads(json.dumps(pack(ref)))
    assert len(packed['state_dict_shapes']) == 2
    assert unpack(packed) == ref
    changed = dict(ref, **{'c.py': dict(built={'w': [4, 3], 'b': [5]})})
    assert compare(ref, changed) == ['c.py: built[b]: [4] -> [5]']


def test_configs_equal_the_reference():
    """Today's RCA configs build and train as the committed reference
    says (in a process of its own, with the kernels pinned)."""
    from tests.conftest import PINNED_KERNELS, run_tool
    code, out = run_tool(
        ['python', osp.relpath(__file__, REPO), 'check', REFERENCE],
        env=PINNED_KERNELS,
        check=False)
    assert code == 0, (
        'the RCA configs differ from tests/test_configs/rca_reference.json '
        f'(see the module docstring to write it again):\n{out[-6000:]}')


if __name__ == '__main__':
    sys.exit(main())
