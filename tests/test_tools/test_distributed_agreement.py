"""Distributed agreement: tools/dist_train.sh with 2 CPU
processes (gloo) keeps RCA's memory bank and prototypes identical on both
ranks, only rank 0 writes checkpoints, and a 2-process run equals a
1-process run of the same global batch.

The 1-process comparison is made fair (docs/reliability.md, "Distributed
agreement"): a deterministic pipeline (resize only), batch norm frozen
(``norm_eval``), the contrast loss off (its mixup partners are drawn from
rank 0's random state, the 1-process run's from its own), every entry a
prototype
(``num_prototypes=None``), and the 1-process batches ordered as the
2-process run gathers them (rank 0's 4 images, then rank 1's), so the bank
sees the same update sequence. What remains is the float summation order
(DDP averages two per-rank batch gradients, one process sums one batch).

The 2-process CAM export is tests/test_tools/test_dist_export.py.
"""
import glob
import os.path as osp
import textwrap

import numpy as np
import pytest
import torch

from ..conftest import REPO, run_dist_tool, run_tool
from .conftest import RCA_SYNTHVOC, two_process_rca_config

# Training only: no validation (it would score the repository's data).
NO_VAL = '''
val_dataloader = None
val_cfg = None
val_evaluator = None
'''

# A test-only hook that saves each rank's bank and prototypes at the end,
# and what its generators would draw at the start of training (from copies:
# the run draws the same), its seeds and the images it was given.
DUMP_HOOK = '''
import numpy as np
import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from rca_mm.registry import HOOKS


@HOOKS.register_module()
class DumpBankHook(Hook):
    def before_train(self, runner):
        gen = torch.Generator()
        gen.set_state(torch.get_rng_state())
        state = np.random.RandomState()
        state.set_state(np.random.get_state())
        self.info = dict(
            torch=torch.rand(8, generator=gen),
            numpy=torch.from_numpy(state.rand(8)),
            seed=runner.seed,
            sampler_seed=getattr(runner.train_dataloader.sampler, 'seed',
                                 None),
            images=[])

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.info['images'] += [
            s.metainfo['sample_idx'] for s in data_batch['data_samples']]

    def after_run(self, runner):
        model = getattr(runner.model, 'module', runner.model)
        state = {k: v for k, v in model.state_dict().items()
                 if 'memory_bank' in k or 'aggregation' in k}
        torch.save(state, f'{runner.work_dir}/rank{get_rank()}.pt')
        torch.save(self.info, f'{runner.work_dir}/draws{get_rank()}.pt')
'''

# The 1-process sampler that visits the images in the order the 2-process
# run gathers them: per step, rank 0's batch (0, 2, 4, 6), then rank 1's
# (1, 3, 5, 7), as mmengine's DefaultSampler(shuffle=False) splits them.
GATHERED_ORDER_SAMPLER = '''
from torch.utils.data import Sampler
from rca_mm.registry import DATA_SAMPLERS


@DATA_SAMPLERS.register_module()
class GatheredOrderSampler(Sampler):
    def __init__(self, dataset, world_size, rank_batch_size, seed=None):
        n = len(dataset)
        assert n % (world_size * rank_batch_size) == 0
        per_rank = [list(range(r, n, world_size)) for r in range(world_size)]
        self.order = [
            i for k in range(0, n // world_size, rank_batch_size)
            for part in per_rank for i in part[k:k + rank_batch_size]]

    def __iter__(self):
        return iter(self.order)

    def __len__(self):
        return len(self.order)

    def set_epoch(self, epoch):
        pass
'''

# Measured: 5e-8 relative on the bank, prototypes and weights after 4
# iterations, 3e-5 on the float16 OAA maps (docs/reliability.md).
RTOL, ATOL = 1e-5, 1e-6
OAA_ATOL = 1e-3  # float16 storage: one ulp in [0.5, 1) is 4.9e-4


@pytest.fixture(scope='module')
def config(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('dist')
    (tmp / 'gathered_order_sampler.py').write_text(GATHERED_ORDER_SAMPLER)
    cfg = two_process_rca_config(tmp, 'dist_cfg.py', 'dump_bank_hook',
                                 DUMP_HOOK, 'DumpBankHook')
    return tmp, cfg


def test_two_ranks_hold_the_same_bank_and_prototypes(config):
    tmp, cfg = config
    work_dir = tmp / 'two'
    log = run_dist_tool(
        ['bash', 'tools/dist_train.sh', cfg, 2, '--work-dir', work_dir],
        env=dict(PYTHONPATH=f'{tmp}:{REPO}', OMP_NUM_THREADS='1'))
    assert 'Distributed training: True' in log, log[-3000:]
    rank0 = torch.load(work_dir / 'rank0.pt', weights_only=True)
    rank1 = torch.load(work_dir / 'rank1.pt', weights_only=True)
    assert rank0['head.memory_bank.written'].any()
    assert rank0['head.aggregation.prototype_valid'].any()
    assert set(rank0) == set(rank1)
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key  # bit-identical
    # Rank 0 alone saved: one complete file per epoch, no leftovers, and
    # its bank is the one both ranks hold.
    assert sorted(p.name for p in work_dir.iterdir()
                  if p.suffix in ('.pth',
                                  '.tmp')) == ['epoch_1.pth', 'epoch_2.pth']
    ckpt = torch.load(work_dir / 'epoch_2.pth', weights_only=True)
    for key in rank0:
        assert torch.equal(ckpt['state_dict'][key], rank0[key]), key
    assert len(ckpt['meta']['rng_state']) == 2  # one per rank
    # randomness.diff_rank_seed: each rank draws its own dropout masks,
    # mixup partners and augmentations (seed + rank), the bank above stays
    # identical; the samplers keep the run's seed, so the ranks' images
    # are disjoint halves of the dataset.
    draws0 = torch.load(work_dir / 'draws0.pt', weights_only=True)
    draws1 = torch.load(work_dir / 'draws1.pt', weights_only=True)
    assert (draws0['seed'], draws1['seed']) == (0, 1)
    assert not torch.equal(draws0['torch'], draws1['torch'])
    assert not torch.equal(draws0['numpy'], draws1['numpy'])
    assert draws0['sampler_seed'] == draws1['sampler_seed'] == 0
    per_epoch = 16 // 2
    for epoch in range(2):
        part = slice(epoch * per_epoch, (epoch + 1) * per_epoch)
        images0 = draws0['images'][part]
        images1 = draws1['images'][part]
        assert sorted(images0 + images1) == list(range(16)), epoch


def fair_configs(tmp):
    """The deterministic 2-process config (4 images per rank) and its
    1-process twin (8 images per batch, in the gathered order)."""
    root = tmp / 'synthvoc'
    two = tmp / 'fair_two.py'
    two.write_text(
        textwrap.dedent(f'''
        _base_ = ['{RCA_SYNTHVOC}']
        custom_imports = dict(
            imports=['dump_bank_hook', 'gathered_order_sampler'])
        model = dict(
            data_preprocessor=dict(size=(64, 64)),
            backbone=dict(norm_eval=True, init_cfg=None),
            head=dict(gate_threshold=0.0, use_rsc=False,
                      aggregation=dict(num_prototypes=None)))
        custom_hooks = [
            dict(type='OAAAccumulationHook', start_epoch=0),
            dict(type='RCAHook'),
            dict(type='DumpBankHook'),
        ]
        train_pipeline = [
            dict(type='LoadWSSSImageFromFile'),
            dict(type='Resize', scale=(64, 64), keep_ratio=False),
            dict(type='PackWSSSInputs'),
        ]
        train_dataloader = dict(
            batch_size=4, num_workers=0, persistent_workers=False,
            sampler=dict(type='DefaultSampler', shuffle=False),
            dataset=dict(data_root='{root}', pipeline=train_pipeline))
        train_cfg = dict(max_epochs=2, val_interval=100)
        auto_scale_lr = dict(base_batch_size=8)  # 2 processes x 4
        ''') + NO_VAL)
    one = tmp / 'fair_one.py'
    one.write_text(
        textwrap.dedent('''
        _base_ = ['./fair_two.py']
        train_dataloader = dict(
            batch_size=8,
            sampler=dict(_delete_=True, type='GatheredOrderSampler',
                         world_size=2, rank_batch_size=4))
        '''))
    return two, one


def oaa_maps(work_dir):
    store = {}
    for path in sorted(glob.glob(str(work_dir / 'oaa_store' / '*.npz'))):
        with np.load(path) as entry:
            store[osp.basename(path)] = (entry['class_ids'].copy(),
                                         entry['maps'].astype(np.float32))
    return store


def test_two_processes_equal_one_process_of_the_same_global_batch(config):
    tmp, _ = config
    two_cfg, one_cfg = fair_configs(tmp)
    env = dict(PYTHONPATH=f'{tmp}:{REPO}', OMP_NUM_THREADS='1')
    two_dir, one_dir = tmp / 'fair_two', tmp / 'fair_one'
    run_dist_tool(
        ['bash', 'tools/dist_train.sh', two_cfg, 2, '--work-dir', two_dir],
        env=env)
    run_tool(['python', 'tools/train.py', one_cfg, '--work-dir', one_dir],
             env=env)
    rank0 = torch.load(two_dir / 'rank0.pt', weights_only=True)
    rank1 = torch.load(two_dir / 'rank1.pt', weights_only=True)
    one = torch.load(one_dir / 'rank0.pt', weights_only=True)
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    # Every (class, image) pair has a slot, written once per epoch, and
    # the bookkeeping (slots, LRU times, step) is identical: the same
    # update sequence.
    written = one['head.memory_bank.written']
    assert bool(written.all())
    assert int(one['head.memory_bank.step']) == 2 * written.numel()
    for key in rank0:
        if rank0[key].is_floating_point():
            torch.testing.assert_close(
                rank0[key], one[key], rtol=RTOL, atol=ATOL, msg=key)
        else:
            assert torch.equal(rank0[key], one[key]), key
    # num_prototypes=None: every entry is a prototype.
    assert int(one['head.aggregation.prototype_valid'].sum()) == \
        written.numel()
    # The weights after 2 epochs of 2 iterations (rank 0's checkpoint).
    w_two = torch.load(
        two_dir / 'epoch_2.pth', weights_only=True)['state_dict']
    w_one = torch.load(
        one_dir / 'epoch_2.pth', weights_only=True)['state_dict']
    assert set(w_two) == set(w_one)
    for key in w_two:
        torch.testing.assert_close(
            w_two[key], w_one[key], rtol=RTOL, atol=ATOL, msg=key)
    # OAA: one shared store, the same maps as the 1-process run's.
    two_maps, one_maps = oaa_maps(two_dir), oaa_maps(one_dir)
    assert len(two_maps) == 16 and set(two_maps) == set(one_maps)
    for name, (ids, maps) in two_maps.items():
        np.testing.assert_array_equal(ids, one_maps[name][0])
        np.testing.assert_allclose(
            maps, one_maps[name][1], rtol=0, atol=OAA_ATOL, err_msg=name)
