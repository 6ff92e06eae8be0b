"""Soak: RCA training memory does not grow over many epochs.

Trains the full RCA classifier (region memory bank with an LRU cap, RSC
loss with region mixup, per-epoch k-means, prototype aggregation, atomic
checkpoints every epoch) on a tiny SynthVOC for many short epochs, in this
process, and records at the end of every epoch:

- ``rss_mib``: the resident set size (``VmRSS`` of ``/proc/self/status``;
  the peak from ``resource.getrusage`` where there is no ``/proc``);
- ``tensors``: live ``torch.Tensor`` objects after ``gc.collect()``
  (parameters and buffers included), and ``tensor_mib``: the bytes of their
  distinct storages;
- ``bank_nbytes``, ``bank_slots``, ``bank_written``: the memory bank's
  buffers, slots and written entries.

Verdict (:func:`verdict`): after the first epochs (allocator and caches
warming up) the least-squares slope over epochs of the RSS must stay below
a limit in MiB/epoch and that of the tensor count below one per epoch, and
the bank must keep the size it was allocated with:
``sum_l min(cap, images tagged l)`` slots.

The short run is part of the suite; the long one is marked ``slow``
(docs/reliability.md has its figures)::

    OMP_NUM_THREADS=1 SOAK_EPOCHS=200 python -m pytest \\
        tests/test_tools/test_soak.py -m slow -s
"""
import gc
import json
import os
import resource
import time
import warnings
from typing import Dict, List, Optional, Sequence

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner
from PIL import Image

from rca_mm.datasets.synthetic import generate_synthvoc
from rca_mm.utils.dist_utils import unwrap_model
from ..conftest import REPO

CONFIG = os.path.join(REPO,
                      'configs/synthvoc/rca_r18-w16_8e_synthvoc-112x112.py')
NUM_CLASSES, FEAT_DIM = 10, 128  # SynthVOC, ResNet-18 w16
# The short run of the suite, and the long run (docs/reliability.md).
QUICK = dict(
    epochs=4, num_images=8, size=32, batch_size=4, capacity_per_class=2)
LONG = dict(
    epochs=int(os.environ.get('SOAK_EPOCHS', 60)),
    num_images=24,
    size=64,
    batch_size=8,
    capacity_per_class=4)


def rss_mib() -> float:
    """This process's resident set size in MiB (peak where no ``/proc``)."""
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def live_tensors() -> Dict[str, float]:
    """Count the live tensors and the MiB of their distinct storages."""
    gc.collect()
    count, storages = 0, {}
    with warnings.catch_warnings():  # deprecated objects warn on isinstance
        warnings.simplefilter('ignore')
        tensors = [
            obj for obj in gc.get_objects() if isinstance(obj, torch.Tensor)
        ]
    for tensor in tensors:
        try:
            storage = tensor.untyped_storage()
        except RuntimeError:  # e.g. sparse tensors have no storage
            continue
        count += 1
        storages[(storage.device.type, storage.data_ptr())] = storage.nbytes()
    return dict(tensors=count, tensor_mib=sum(storages.values()) / 2**20)


class SoakProbeHook(Hook):
    """Records memory figures at the end of every training epoch."""

    priority = 'LOWEST'  # after the checkpoint of the epoch is written

    def __init__(self) -> None:
        self.records: List[dict] = []
        self._start = time.perf_counter()

    def after_train_epoch(self, runner: Runner) -> None:
        bank = unwrap_model(runner.model).head.memory_bank
        record = dict(
            epoch=runner.epoch + 1,
            seconds=round(time.perf_counter() - self._start, 2),
            rss_mib=round(rss_mib(), 2),
            bank_nbytes=bank.nbytes,
            bank_slots=int(bank.feats.shape[0]),
            bank_written=bank.num_written())
        record.update(live_tensors())
        record['tensor_mib'] = round(record['tensor_mib'], 3)
        self.records.append(record)
        print(
            f'epoch {record["epoch"]:3d}  {record["seconds"]:7.1f} s  RSS '
            f'{record["rss_mib"]:8.1f} MiB  tensors {record["tensors"]:6d} '
            f'({record["tensor_mib"]:.2f} MiB)  bank '
            f'{record["bank_nbytes"]} B, {record["bank_written"]}/'
            f'{record["bank_slots"]} slots written',
            flush=True)


def slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of ``ys`` over ``xs`` (0 for fewer than 2)."""
    x = np.asarray(xs, dtype=np.float64)
    y = np.asarray(ys, dtype=np.float64)
    if x.size < 2:
        return 0.0
    dx = x - x.mean()
    return float((dx * (y - y.mean())).sum() / (dx * dx).sum())


def verdict(records: List[dict], expected_slots: int, *, skip: int,
            max_rss_slope: float, max_tensor_slope: float) -> dict:
    """The growth checks over the epochs after the first ``skip``.

    Args:
        records (list[dict]): one per epoch, as :class:`SoakProbeHook`.
        expected_slots (int): the bank slots the configuration allows.
        skip (int): leading epochs left out of the fits.
        max_rss_slope (float): MiB/epoch allowed.
        max_tensor_slope (float): live tensors/epoch allowed.

    Returns:
        dict: the slopes, the checks and ``ok`` (all checks passed).
    """
    fit = records[skip:]
    if len(fit) < 2:
        raise ValueError(f'soak: {len(records)} epochs leave fewer than 2 '
                         f'after skipping {skip}; train more epochs')
    epochs = [r['epoch'] for r in fit]
    late = fit[len(fit) // 2:]
    result = dict(
        fit_epochs=[epochs[0], epochs[-1]],
        rss_slope_mib=slope(epochs, [r['rss_mib'] for r in fit]),
        # The second half alone: ~0 once the allocator has settled.
        rss_slope_late_mib=slope([r['epoch'] for r in late],
                                 [r['rss_mib'] for r in late]),
        tensor_slope=slope(epochs, [r['tensors'] for r in fit]),
        tensor_mib_slope=slope(epochs, [r['tensor_mib'] for r in fit]),
        rss_growth_mib=fit[-1]['rss_mib'] - fit[0]['rss_mib'],
        tensor_growth=fit[-1]['tensors'] - fit[0]['tensors'],
        expected_slots=expected_slots)
    checks = dict(
        rss=result['rss_slope_mib'] < max_rss_slope,
        tensors=result['tensor_slope'] < max_tensor_slope,
        bank_constant=len({r['bank_nbytes']
                           for r in records}) == 1,
        bank_bounded=all(r['bank_slots'] == expected_slots
                         and r['bank_written'] <= expected_slots
                         for r in records))
    result.update(checks=checks, ok=all(checks.values()))
    return result


def expected_slots(dataset, num_classes: int, cap: Optional[int]) -> int:
    """``sum_l min(cap, images tagged l)`` from the dataset's tags."""
    per_class = np.zeros(num_classes, dtype=np.int64)
    for idx in range(len(dataset)):
        for label in set(dataset.get_data_info(idx)['img_labels']):
            per_class[label] += 1
    if cap is not None:
        per_class = np.minimum(per_class, cap)
    return int(per_class.sum())


def soak_config(work_dir: str, *, epochs: int, size: int, batch_size: int,
                capacity_per_class: Optional[int]) -> Config:
    """The SynthVOC RCA config, shrunk to tiny images and short epochs,
    reading ``work_dir/synthvoc``."""
    cfg = Config.fromfile(CONFIG)
    cfg.work_dir = work_dir
    cfg.model.data_preprocessor.size = (size, size)
    cfg.model.backbone.init_cfg = None  # random weights: memory, not quality
    cfg.model.head.gate_threshold = 0.0  # write every region (untrained)
    cfg.model.head.memory_bank = dict(
        type='RegionMemoryBank', capacity_per_class=capacity_per_class)
    cfg.model.head.aggregation.update(num_prototypes=3, num_init=1)
    for step in cfg.train_dataloader.dataset.pipeline:
        if step['type'] == 'RandomResize':
            step['scale'] = (size, size)
        elif step['type'] == 'RandomCrop':
            step['crop_size'] = (size, size)
        elif step['type'] == 'PadToSize':
            step['size'] = (size, size)
    cfg.train_dataloader.update(
        batch_size=batch_size, num_workers=0, persistent_workers=False)
    cfg.train_dataloader.dataset.data_root = os.path.join(work_dir, 'synthvoc')
    # The config's cosine schedule over the soak's epochs, no validation.
    cfg.train_cfg.update(max_epochs=epochs, val_interval=epochs + 1)
    cfg.param_scheduler[0].update(T_max=epochs, end=epochs)
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    cfg.default_hooks.checkpoint.update(interval=1, max_keep_ckpts=1)
    cfg.default_hooks.logger.interval = 1000
    cfg.log_level = 'WARNING'
    cfg.randomness = dict(seed=0)
    return cfg


def run_soak(work_dir: str, *, num_images: int, skip: int,
             max_rss_slope: float, **settings) -> dict:
    """Generate the data, train with :class:`SoakProbeHook` (one torch
    thread) and judge the records; returns the records and the verdict."""
    size, cap = settings['size'], settings['capacity_per_class']
    generate_synthvoc(
        os.path.join(work_dir, 'synthvoc'),
        num_train=num_images,
        num_val=1,
        num_train_subset=1,
        size=(size, size),
        show_progress=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    # mmcv's ColorJitter warns on every image with the cv2 backend.
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', message="Only use 'alpha'")
        try:
            runner = Runner.from_cfg(soak_config(work_dir, **settings))
            probe = SoakProbeHook()
            runner.register_hook(probe)
            runner.train()
        finally:
            torch.set_num_threads(threads)
    head = unwrap_model(runner.model).head
    slots = expected_slots(runner.train_dataloader.dataset, head.num_classes,
                           cap)
    result = verdict(
        probe.records,
        slots,
        skip=skip,
        max_rss_slope=max_rss_slope,
        max_tensor_slope=0.5)
    print(f'soak: epochs {result["fit_epochs"][0]}..'
          f'{result["fit_epochs"][1]}: RSS slope '
          f'{result["rss_slope_mib"]:+.4f} MiB/epoch (growth '
          f'{result["rss_growth_mib"]:+.2f} MiB; second half '
          f'{result["rss_slope_late_mib"]:+.4f}), live tensors slope '
          f'{result["tensor_slope"]:+.4f}/epoch (growth '
          f'{result["tensor_growth"]:+d}); bank {slots} slots expected')
    print('soak: ' + ', '.join(f'{k} {"ok" if ok else "FAILED"}'
                               for k, ok in result['checks'].items()) +
          f' -> {"PASS" if result["ok"] else "FAIL"}')
    return dict(records=probe.records, verdict=result)


def test_quick_soak_records_a_bounded_bank_and_no_tensor_growth(
        tmp_path, capsys):
    # Three fitted epochs of 0.5 s are too few for an RSS slope: CI once
    # measured +1.44 MiB/epoch from one allocator step. The RSS limit is
    # lifted here and the RSS only checked for consistency below; the long
    # run holds the RSS limit.
    report = run_soak(
        str(tmp_path), skip=1, max_rss_slope=float('inf'), **QUICK)
    records, verdict_ = report['records'], report['verdict']
    assert [r['epoch'] for r in records] == [1, 2, 3, 4]
    # The bank's size from the tags of the generated images, by hand:
    # min(cap, images tagged l) slots per class; per slot D float32
    # features, a bool and three int64; plus step, num_images, the L+1
    # class offsets and the int32 (L, images) lookup table.
    root = tmp_path / 'synthvoc'
    names = (root / 'ImageSets/Segmentation/train_aug.txt').read_text().split()
    assert len(names) == 8
    per_class = np.zeros(NUM_CLASSES, dtype=int)
    for name in names:
        label = np.asarray(
            Image.open(root / 'SegmentationClassAug' / f'{name}.png'))
        for value in set(np.unique(label).tolist()) - {0, 255}:
            per_class[value - 1] += 1
    slots = int(np.minimum(per_class, QUICK['capacity_per_class']).sum())
    assert slots < per_class.sum()  # the cap evicts
    nbytes = slots * (FEAT_DIM * 4 + 1 + 3 * 8) + 2 * 8 + \
        (NUM_CLASSES + 1) * 8 + NUM_CLASSES * len(names) * 4
    assert verdict_['expected_slots'] == slots
    for r in records:
        assert r['bank_slots'] == slots and r['bank_nbytes'] == nbytes
        assert r['bank_written'] == slots  # gate 0: every slot is used
        assert r['rss_mib'] > 0 and r['tensor_mib'] > 0
    # No live tensor is added epoch over epoch once training runs (the
    # count is deterministic; the RSS is printed, not asserted).
    assert len({r['tensors'] for r in records[1:]}) == 1
    assert verdict_['tensor_growth'] == 0 and verdict_['checks']['tensors']
    assert verdict_['fit_epochs'] == [2, 4]
    fit = records[1:]
    np.testing.assert_allclose(
        verdict_['rss_slope_mib'],
        np.polyfit([r['epoch'] for r in fit], [r['rss_mib'] for r in fit],
                   1)[0],
        atol=1e-9)
    log = capsys.readouterr().out
    assert 'soak: rss' in log and 'tensors ok' in log


@pytest.mark.slow
def test_long_soak_memory_stays_flat(tmp_path):
    """The run of docs/reliability.md: the RSS within 0.25 MiB/epoch."""
    report = run_soak(str(tmp_path), skip=3, max_rss_slope=0.25, **LONG)
    (tmp_path / 'soak.json').write_text(json.dumps(report, indent=1))
    print(f'soak: records and verdict in {tmp_path / "soak.json"}')
    assert report['verdict']['ok'], report['verdict']


def fake_records(rss_step=0.0, tensor_step=0, nbytes_step=0, epochs=8):
    return [
        dict(
            epoch=e,
            rss_mib=500.0 + rss_step * e + 0.1 * (e % 2),
            tensors=200 + tensor_step * e,
            tensor_mib=5.0,
            bank_nbytes=1000 + nbytes_step * e,
            bank_slots=10,
            bank_written=10) for e in range(1, epochs + 1)
    ]


def test_verdict_flags_growth_and_a_changing_bank():
    kwargs = dict(skip=2, max_rss_slope=0.25, max_tensor_slope=0.5)
    flat = verdict(fake_records(), 10, **kwargs)
    assert flat['ok'] and flat['fit_epochs'] == [3, 8]
    # Alternating +-0.1 MiB noise around a flat line: slope by hand.
    x = np.arange(3, 9)
    y = 0.1 * (x % 2)
    ref = ((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean())**2).sum()
    assert flat['rss_slope_mib'] == pytest.approx(ref)
    assert slope([1, 2, 3], [1.0, 3.0, 5.0]) == pytest.approx(2.0)

    grows = verdict(fake_records(rss_step=1.0), 10, **kwargs)
    assert not grows['ok'] and not grows['checks']['rss']
    assert grows['rss_growth_mib'] == pytest.approx(5.0 + 0.1 * (0 - 1))
    leaks = verdict(fake_records(tensor_step=1), 10, **kwargs)
    assert not leaks['checks']['tensors'] and leaks['tensor_growth'] == 5
    resized = verdict(fake_records(nbytes_step=8), 10, **kwargs)
    assert not resized['checks']['bank_constant']
    assert not verdict(fake_records(), 9, **kwargs)['checks']['bank_bounded']
    with pytest.raises(ValueError, match='fewer than 2'):
        verdict(fake_records(epochs=3), 10, **kwargs)
