"""Soak test of RCA training memory: no growth over many epochs.

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

Verdict: after ``--skip`` epochs (allocator and caches warming up) the
least-squares slope over epochs of the RSS must stay below
``--max-rss-slope`` MiB/epoch and that of the tensor count below
``--max-tensor-slope`` per epoch, and the bank must keep the size it was
allocated with: ``sum_l min(cap, images tagged l)`` slots. Exit status 1
when a check fails.

Examples::

    python tools/analysis_tools/soak.py --epochs 60 --out soak.json
    python tools/analysis_tools/soak.py --quick      # a 4-epoch smoke run
"""
import argparse
import gc
import json
import os
import os.path as osp
import resource
import sys
import tempfile
import time
import warnings
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

from rca_mm.datasets.synthvoc import generate_synthvoc
from rca_mm.utils.dist_utils import unwrap_model

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(REPO, 'configs/synthvoc/rca_r18-w16_8e_synthvoc-112x112.py')
QUICK = dict(
    epochs=4,
    num_images=8,
    size=32,
    batch_size=4,
    skip=1,
    capacity_per_class=2)


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

    def after_train_epoch(self, runner) -> None:
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
        print(format_record(record), flush=True)


def format_record(r: dict) -> str:
    return (f'epoch {r["epoch"]:3d}  {r["seconds"]:7.1f} s  RSS '
            f'{r["rss_mib"]:8.1f} MiB  tensors {r["tensors"]:6d} '
            f'({r["tensor_mib"]:.2f} MiB)  bank {r["bank_nbytes"]} B, '
            f'{r["bank_written"]}/{r["bank_slots"]} slots written')


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
                         f'after --skip {skip}; train more epochs')
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


def build_config(args, data_root: str, work_dir: str) -> Config:
    """The SynthVOC RCA config, shrunk to tiny images and short epochs."""
    cfg = Config.fromfile(CONFIG)
    size = (args.size, args.size)
    cfg.work_dir = work_dir
    cfg.model.data_preprocessor.size = size
    cfg.model.backbone.init_cfg = None  # random weights: memory, not quality
    cfg.model.head.gate_threshold = 0.0  # write every region (untrained)
    cfg.model.head.memory_bank = dict(
        type='RegionMemoryBank', capacity_per_class=args.capacity_per_class)
    cfg.model.head.aggregation = dict(
        type='PrototypeAggregation',
        num_prototypes=args.num_prototypes,
        num_init=1)
    pipeline = cfg.train_dataloader.dataset.pipeline
    for step in pipeline:
        if step['type'] == 'RandomResize':
            step['scale'] = size
        elif step['type'] == 'RandomCrop':
            step['crop_size'] = size
        elif step['type'] == 'PadToSize':
            step['size'] = size
    cfg.train_dataloader.update(
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        persistent_workers=args.num_workers > 0)
    cfg.train_dataloader.dataset.data_root = data_root
    cfg.train_cfg = dict(
        type='EpochBasedTrainLoop',
        max_epochs=args.epochs,
        val_interval=args.epochs + 1)
    cfg.param_scheduler = [
        dict(
            type='CosineAnnealingLR',
            T_max=args.epochs,
            by_epoch=True,
            begin=0,
            end=args.epochs,
            eta_min=1e-4)
    ]
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    cfg.default_hooks.checkpoint.update(interval=1, max_keep_ckpts=1)
    cfg.default_hooks.logger.interval = 1000
    cfg.log_level = 'WARNING'
    cfg.randomness = dict(seed=0)
    return cfg


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Soak test: does RCA training memory grow per epoch?')
    parser.add_argument('--epochs', type=int, default=60)
    parser.add_argument(
        '--num-images', type=int, default=24, help='SynthVOC training images')
    parser.add_argument(
        '--size', type=int, default=64, help='image side (>= 32)')
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument(
        '--num-workers',
        type=int,
        default=0,
        help='dataloader workers (their memory is not '
        'measured)')
    parser.add_argument(
        '--capacity-per-class',
        type=int,
        default=4,
        help='bank cap per class (0: one slot per image)')
    parser.add_argument('--num-prototypes', type=int, default=3)
    parser.add_argument(
        '--skip',
        type=int,
        default=3,
        help='leading epochs left out of the fits')
    parser.add_argument(
        '--max-rss-slope',
        type=float,
        default=0.25,
        help='allowed RSS growth, MiB per epoch')
    parser.add_argument(
        '--max-tensor-slope',
        type=float,
        default=0.5,
        help='allowed growth of the live tensor count per '
        'epoch')
    parser.add_argument(
        '--work-dir',
        help='data and checkpoints (default: a temporary '
        'directory, removed at the end)')
    parser.add_argument(
        '--out', help='write the records and verdict here '
        '(JSON)')
    parser.add_argument(
        '--quick',
        action='store_true',
        help='smoke run: ' + ', '.join(f'{k}={v}' for k, v in QUICK.items()))
    args = parser.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    if args.size < 32:
        parser.error(f'--size must be >= 32 (SynthVOC), got {args.size}')
    if args.epochs < args.skip + 2:
        parser.error(f'--epochs {args.epochs} must exceed --skip '
                     f'{args.skip} by at least 2 (the fit needs 2 epochs)')
    if args.capacity_per_class == 0:
        args.capacity_per_class = None
    return args


def run(args: argparse.Namespace, work_dir: str) -> dict:
    data_root = osp.join(work_dir, 'synthvoc')
    generate_synthvoc(
        data_root,
        num_train=args.num_images,
        num_val=1,
        num_train_subset=1,
        size=(args.size, args.size),
        show_progress=False)
    runner = Runner.from_cfg(build_config(args, data_root, work_dir))
    probe = SoakProbeHook()
    runner.register_hook(probe)
    print(
        f'soak: {args.epochs} epochs of {args.num_images} images '
        f'{args.size}x{args.size}, batch {args.batch_size}, bank cap '
        f'{args.capacity_per_class}, torch threads '
        f'{torch.get_num_threads()}, pid {os.getpid()}',
        flush=True)
    runner.train()
    head = unwrap_model(runner.model).head
    slots = expected_slots(runner.train_dataloader.dataset, head.num_classes,
                           args.capacity_per_class)
    result = verdict(
        probe.records,
        slots,
        skip=args.skip,
        max_rss_slope=args.max_rss_slope,
        max_tensor_slope=args.max_tensor_slope)
    return dict(args=vars(args), records=probe.records, verdict=result)


def main(argv=None) -> int:
    args = parse_args(argv)
    # mmcv's ColorJitter warns on every image with the cv2 backend.
    warnings.filterwarnings('ignore', message="Only use 'alpha'")
    if args.work_dir:
        os.makedirs(args.work_dir, exist_ok=True)
        report = run(args, args.work_dir)
    else:
        with tempfile.TemporaryDirectory(prefix='soak_') as tmp:
            report = run(args, tmp)
    v = report['verdict']
    print(f'soak: epochs {v["fit_epochs"][0]}..{v["fit_epochs"][1]}: RSS '
          f'slope {v["rss_slope_mib"]:+.4f} MiB/epoch (growth '
          f'{v["rss_growth_mib"]:+.2f} MiB; second half '
          f'{v["rss_slope_late_mib"]:+.4f}), live tensors slope '
          f'{v["tensor_slope"]:+.4f}/epoch (growth {v["tensor_growth"]:+d}), '
          f'tensor storage slope {v["tensor_mib_slope"]:+.5f} MiB/epoch; '
          f'bank {v["expected_slots"]} slots expected')
    print('soak: ' + ', '.join(f'{k} {"ok" if ok else "FAILED"}'
                               for k, ok in v['checks'].items()) +
          f' -> {"PASS" if v["ok"] else "FAIL"}')
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(report, f, indent=1)
    return 0 if v['ok'] else 1


if __name__ == '__main__':
    sys.exit(main())
