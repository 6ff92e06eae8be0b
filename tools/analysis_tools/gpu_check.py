"""The Python parts of the GPU acceptance check (``bash tools/gpu_check.sh``).

Subcommands, each writing its figures to ``WORK_DIR/parts/<name>.json``:

- ``env``: torch, CUDA, cuDNN, the driver, every device with its compute
  capability, and whether this torch has kernels for it
  (``rca_mm.utils.cuda_check``); exits 1 on an unsupported card, 0 without
  a CUDA device (saying so).
- ``prepare``: a small SynthVOC, and the config of the training check: the
  SynthVOC RCA + EPS config (from random weights when the SynthNet weights
  are absent), every region written to the bank, 2 epochs, plus two
  test-only hooks: one saves each rank's bank and prototypes at the end,
  one kills every rank at iteration ``GPU_CHECK_KILL_AT`` (environment).
- ``compare-ranks``: after the killed and resumed run, whether every rank
  holds the same bank and prototypes (bit-identical), equal to rank 0's
  last checkpoint, all finite, and the logged losses finite.
- ``measure``: one RCA step under ``torch.cuda.set_sync_debug_mode('warn')``
  listing what synchronises; the peak memory of a training step of
  ``configs/rca/rca_eps_r38_voc.py`` at 448x448 (batch 2 and 8) and of
  ``configs/deeplabv2/deeplabv2_r101_voc.py`` with its MSC at 321x321
  (batch 10), random weights; the RMS of the backbone feature F; and the
  step time of RCA + EPS against EPS at the paper's size (448x448, batch
  8). ``--tiny`` runs the same code on SynthVOC's small configs at 32x32,
  and on a CPU the peak memory is the estimate below, so the whole
  subcommand is tested on a CPU (``tests/test_tools/test_gpu_check.py``).
- ``estimate-memory``: a CPU estimate of a training step's peak memory for
  a config at a batch and size: the bytes autograd saves for the backward
  pass, measured at two small sizes and extrapolated linearly in pixels,
  plus weights, gradients, SGD momentum and buffers (the bank). It is what
  ``docs/performance.md``'s memory table was made with.
- ``summary``: ``WORK_DIR/gpu_check.json`` (every part) and
  ``WORK_DIR/gpu_check.txt`` (readable).

Peak memory on a GPU is ``torch.cuda.max_memory_allocated`` over two
training steps (forward, backward, SGD with momentum; the second has the
momentum buffers), after ``reset_peak_memory_stats``.
"""
import argparse
import glob
import json
import logging
import math
import os
import os.path as osp
import re
import statistics
import subprocess
import sys
import textwrap
import traceback
import warnings
from typing import Callable, Dict, List, Optional, Tuple

import torch
from mmengine.logging import MMLogger
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from rca_mm.fileio.atomic import atomic_write, write_json_atomic
from rca_mm.models.memory import batched_kmeans
from rca_mm.registry import MODELS
from rca_mm.utils.benchmark import (BANKS, cost, cost_name, fill_bank,
                                    interleaved, machine_line,
                                    random_weights_config, start_benchmark,
                                    step_fn, synthetic_tags)
from rca_mm.utils.cuda_check import check_capability, format_capability

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

SYNTHVOC_RCA = 'configs/synthvoc/rca-eps_r18-w16_8e_synthvoc-112x112.py'
SYNTHVOC_EPS = 'configs/synthvoc/eps_r18-w16_8e_synthvoc-112x112.py'
SYNTHVOC_SEG = 'configs/synthvoc/deeplabv2_r18-w16-d8_1k_synthvoc-112x112.py'
RCA_R38 = 'configs/rca/rca_eps_r38_voc.py'
EPS_R38 = 'configs/eps/eps_r38_voc.py'
DEEPLAB = 'configs/deeplabv2/deeplabv2_r101_voc.py'
PRETRAINED = 'data/pretrained/resnet18-w16-d8_synthnet.pth'
FP16_MAX = 65504.0
MIB = 2**20

# (name, config, batch, size) of the memory measurements; --tiny: small
# stand-ins on the same code paths.
MEMORY_CASES = [
    ('rca_eps_r38_voc_448_b2', RCA_R38, 2, 448),
    ('rca_eps_r38_voc_448_b8', RCA_R38, 8, 448),
    ('deeplabv2_r101_voc_msc_321_b10', DEEPLAB, 10, 321),
]
TINY_MEMORY_CASES = [
    ('synthvoc_rca_eps_32_b2', SYNTHVOC_RCA, 2, 32),
    ('synthvoc_deeplabv2_msc_32_b2', SYNTHVOC_SEG, 2, 32),
]

# Test-only hooks of the training check, imported by the training
# processes from the work dir (PYTHONPATH).
HOOKS_MODULE = '''
"""Test-only hooks of tools/gpu_check.sh (written by gpu_check.py)."""
import os
import signal

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook

from rca_mm.registry import HOOKS


@HOOKS.register_module()
class GPUCheckDumpBankHook(Hook):
    """Each rank saves its bank and prototypes when the run ends."""

    def after_run(self, runner):
        model = getattr(runner.model, 'module', runner.model)
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()
                 if 'memory_bank' in k or 'aggregation' in k}
        torch.save(state, f'{runner.work_dir}/rank{get_rank()}.pt')


@HOOKS.register_module()
class GPUCheckKillHook(Hook):
    """Every rank SIGKILLs itself after iteration GPU_CHECK_KILL_AT."""
    priority = 'VERY_HIGH'

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        at = int(os.environ.get('GPU_CHECK_KILL_AT', '0'))
        if at and runner.iter + 1 == at:
            print(f'gpu_check: killing rank {get_rank()} at iteration {at}',
                  flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
'''


# ---------------------------------------------------------------- parts
def part_path(work_dir: str, name: str) -> str:
    return osp.join(work_dir, 'parts', f'{name}.json')


def save_part(work_dir: str, name: str, data: dict) -> None:
    os.makedirs(osp.join(work_dir, 'parts'), exist_ok=True)
    write_json_atomic(part_path(work_dir, name), data)


# ---------------------------------------------------------------- env
def driver_version() -> Optional[str]:
    """The NVIDIA driver's version (nvidia-smi, else the kernel module's
    /proc entry); None when neither is there."""
    try:
        out = subprocess.run([
            'nvidia-smi', '--query-gpu=driver_version', '--format=csv,noheader'
        ],
                             capture_output=True,
                             text=True,
                             timeout=30)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.split()[0]
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        with open('/proc/driver/nvidia/version') as f:
            match = re.search(r'Kernel Module\s+(\S+)', f.read())
        return match.group(1) if match else None
    except OSError:
        return None


def env_info() -> dict:
    """torch, CUDA, cuDNN, driver and the devices with their verdicts."""
    info = dict(
        torch=torch.__version__,
        cuda_build=torch.version.cuda,
        cudnn=torch.backends.cudnn.version()
        if torch.backends.cudnn.is_available() else None,
        driver=None,
        arch_list=[],
        devices=[],
        supported=True)
    if not torch.cuda.is_available():
        return info
    info['driver'] = driver_version()
    info['arch_list'] = torch.cuda.get_arch_list()
    for index in range(torch.cuda.device_count()):
        cap = torch.cuda.get_device_capability(index)
        props = torch.cuda.get_device_properties(index)
        result = check_capability(info['arch_list'], cap,
                                  torch.cuda.get_device_name(index))
        info['devices'].append(
            dict(
                index=index,
                name=props.name,
                capability=format_capability(cap),
                memory_gib=round(props.total_memory / 2**30, 1),
                supported=result.ok,
                message=result.message))
        info['supported'] &= result.ok
    return info


def cmd_env(args: argparse.Namespace) -> int:
    info = env_info()
    print(f'torch {info["torch"]}, CUDA build {info["cuda_build"]}, cuDNN '
          f'{info["cudnn"]}, driver {info["driver"]}')
    if not info['devices']:
        print('no CUDA device')
    for dev in info['devices']:
        print(f'cuda:{dev["index"]} {dev["name"]}, compute capability '
              f'{dev["capability"]}, {dev["memory_gib"]} GiB: ' +
              ('ok' if dev['supported'] else 'UNSUPPORTED'))
        if not dev['supported']:
            print('  ' + dev['message'])
    if args.work_dir:
        save_part(args.work_dir, 'env', info)
    return 0 if info['supported'] else 1


# ---------------------------------------------------------------- prepare
def check_config(data_root: str, gpus: int, pretrained: bool) -> str:
    """The training check's config (text), inheriting the SynthVOC
    RCA + EPS config."""
    init = '' if pretrained else 'init_cfg=None'
    return textwrap.dedent(f'''\
        # Written by tools/analysis_tools/gpu_check.py prepare.
        _base_ = ['{osp.join(REPO, SYNTHVOC_RCA)}']
        custom_imports = dict(imports=['gpu_check_hooks'],
                              allow_failed_imports=False)
        custom_hooks = [
            dict(type='RCAHook'),
            dict(type='GPUCheckKillHook'),
            dict(type='GPUCheckDumpBankHook'),
        ]
        # Every region is written (the paper's 0.7 needs a trained model),
        # so the banks compared across ranks are full.
        model = dict(backbone=dict({init}), head=dict(gate_threshold=0.0))
        train_dataloader = dict(
            batch_size=8, num_workers=2, persistent_workers=False,
            dataset=dict(data_root='{data_root}'))
        # 8 images per GPU on {gpus} GPU(s): the total this run is for.
        auto_scale_lr = dict(enable=False, base_batch_size={8 * gpus})
        train_cfg = dict(max_epochs=2, val_interval=100)
        default_hooks = dict(
            logger=dict(interval=1),
            checkpoint=dict(interval=1, max_keep_ckpts=2))
        val_dataloader = None
        val_cfg = None
        val_evaluator = None
        ''')


def cmd_prepare(args: argparse.Namespace) -> int:
    from rca_mm.datasets.synthetic import generate_synthvoc
    root = osp.abspath(osp.join(args.work_dir, 'synthvoc'))
    # 4 iterations of 8 images per GPU and epoch.
    generate_synthvoc(
        root,
        num_train=32 * args.gpus,
        num_val=8,
        num_train_subset=8,
        show_progress=False)
    pretrained = osp.isfile(osp.join(REPO, PRETRAINED))
    atomic_write_text(
        osp.join(args.work_dir, 'gpu_check_hooks.py'), HOOKS_MODULE)
    atomic_write_text(
        osp.join(args.work_dir, 'check_cfg.py'),
        check_config(root, args.gpus, pretrained))
    save_part(
        args.work_dir, 'prepare',
        dict(
            data_root=root,
            gpus=args.gpus,
            images=32 * args.gpus,
            pretrained=pretrained))
    print(f'SynthVOC of {32 * args.gpus} images in {root}; backbone ' +
          ('from ' + PRETRAINED if pretrained else 'from random weights '
           f'({PRETRAINED} absent)'))
    return 0


def atomic_write_text(path: str, text: str) -> None:

    def write(tmp: str) -> None:
        with open(tmp, 'w') as f:
            f.write(text)

    atomic_write(path, write)


# ---------------------------------------------------------------- compare
def logged_losses(run_dir: str) -> List[float]:
    """Every loss value mmengine logged (``*/vis_data/scalars.json``)."""
    values = []
    for path in sorted(
            glob.glob(osp.join(run_dir, '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            for line in f:
                row = json.loads(line)
                values += [
                    float(v) for k, v in row.items()
                    if k.startswith('loss') and isinstance(v, (int, float))
                ]
    return values


def compare_ranks(run_dir: str) -> dict:
    """Whether the ranks' saved banks and prototypes agree bit for bit,
    equal rank 0's last checkpoint, and are finite; the losses too."""
    files = sorted(glob.glob(osp.join(run_dir, 'rank*.pt')))
    out = dict(
        run_dir=run_dir,
        ranks=len(files),
        identical=None,
        equal_to_checkpoint=None,
        finite=None,
        differing_keys=[])
    if not files:
        out['error'] = f'no rank*.pt in {run_dir}: the run did not finish'
        return out
    states = [torch.load(f, weights_only=True) for f in files]
    ref = states[0]
    differing = sorted({
        k
        for s in states[1:]
        for k in set(ref) | set(s)
        if k not in s or k not in ref or not torch.equal(ref[k], s[k])
    })
    out['differing_keys'] = differing
    out['identical'] = not differing
    out['finite'] = all(
        bool(torch.isfinite(v).all()) for s in states for v in s.values()
        if v.is_floating_point())
    bank = ref.get('head.memory_bank.written')
    out['bank_written'] = int(bank.sum()) if bank is not None else None
    valid = ref.get('head.aggregation.prototype_valid')
    out['prototypes_valid'] = int(valid.sum()) if valid is not None else None
    ckpts = sorted(
        glob.glob(osp.join(run_dir, 'epoch_*.pth')),
        key=lambda p: int(re.findall(r'\d+', osp.basename(p))[0]))
    if ckpts:
        state = torch.load(ckpts[-1], weights_only=True)['state_dict']
        out['checkpoint'] = osp.basename(ckpts[-1])
        out['equal_to_checkpoint'] = all(
            torch.equal(state[k].cpu(), v) for k, v in ref.items())
    losses = logged_losses(run_dir)
    out['losses_logged'] = len(losses)
    out['losses_finite'] = bool(losses) and all(
        math.isfinite(v) for v in losses)
    return out


def cmd_compare_ranks(args: argparse.Namespace) -> int:
    result = compare_ranks(args.run)
    log = osp.join(args.run, 'gpu_check.log')
    if osp.isfile(log):
        text = open(log).read()
        result['killed'] = 'gpu_check: killing rank' in text
        match = re.search(r'resumed epoch: (\d+), iter: (\d+)', text)
        result['resumed_from'] = match.group(0) if match else None
    save_part(args.work_dir, args.name, result)
    print(json.dumps(result, indent=1))
    ok = (
        result.get('identical') and result.get('finite')
        and result.get('losses_finite')
        and result.get('equal_to_checkpoint') is not False)
    return 0 if ok else 1


# ---------------------------------------------------------------- models
def build_model(config: str, device: torch.device) -> torch.nn.Module:
    """The config's model with random weights, on ``device``, training."""
    cfg = random_weights_config(osp.join(REPO, config))
    model = MODELS.build(cfg.model)
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)  # not the line per weight
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)
    return model.to(device).train()


def is_segmentor(model: torch.nn.Module) -> bool:
    return hasattr(model, 'decode_head')


def prepare_rca(model: torch.nn.Module, bank: str, seed: int) -> None:
    """Fill an RCA head's bank as ``benchmark_rca.py step`` does
    (``bank``: a key of ``rca_mm.utils.benchmark.BANKS``), cluster the
    prototypes, switch the contrast on."""
    head = getattr(model, 'head', None)
    if head is None or not hasattr(head, 'memory_bank'):
        return
    num_classes, num_images, per_image, cap = BANKS[bank]
    head.memory_bank.capacity_per_class = cap
    gen = torch.Generator().manual_seed(seed)
    tags = synthetic_tags(head.memory_bank.num_classes, num_images, per_image,
                          gen)
    fill_bank(head.memory_bank, tags, gen)
    entries, mask = head.memory_bank.per_class_entries()
    k = head.aggregation.num_prototypes or 10
    centers, valid, _ = batched_kmeans(
        entries.float(), mask, k, num_iters=20, n_init=1, seed=seed)
    head.aggregation.set_prototypes(centers, valid)
    head.set_contrast(True)


def make_batch(model: torch.nn.Module,
               batch: int,
               size: int,
               device: torch.device,
               seed: int = 0) -> Tuple[torch.Tensor, list]:
    """Normalised random inputs and their samples: tags (and saliency for
    EPS) for a classifier, a label map for a segmentor."""
    gen = torch.Generator().manual_seed(seed)
    inputs = torch.randn(batch, 3, size, size, generator=gen).to(device)
    samples = []
    for i in range(batch):
        sample = SegDataSample(
            metainfo=dict(
                sample_idx=i,
                img_shape=(size, size),
                ori_shape=(size, size),
                pad_shape=(size, size)))
        if is_segmentor(model):
            classes = model.decode_head.num_classes
            label = torch.randint(classes, (1, size, size), generator=gen)
            sample.gt_sem_seg = PixelData(data=label.to(device))
        else:
            num_classes = model.head.num_classes
            tags = torch.zeros(num_classes)
            tags[torch.randint(num_classes, (2, ), generator=gen)] = 1
            sample.gt_img_labels = tags.to(device)
            if getattr(model.head, 'saliency_loss', None) is not None:
                sal = torch.rand(1, size, size, generator=gen)
                sample.gt_saliency = PixelData(data=sal.to(device))
        samples.append(sample)
    return inputs, samples


def make_step(model: torch.nn.Module,
              inputs: torch.Tensor,
              samples: list,
              amp: bool = False) -> Callable[[], Dict[str, float]]:
    """One SGD training step (forward, backward, momentum update); returns
    its losses (tensors, no host synchronisation)."""
    optim = torch.optim.SGD([p for p in model.parameters() if p.requires_grad],
                            lr=1e-5,
                            momentum=0.9)

    def step():
        with torch.autocast(inputs.device.type, enabled=amp):
            losses = model.loss(inputs, samples)
        # mmengine's rule: every entry whose name contains 'loss'.
        loss = sum(v for k, v in losses.items() if 'loss' in k)
        optim.zero_grad()
        loss.backward()
        optim.step()
        return losses

    return step


def state_bytes(model: torch.nn.Module) -> Tuple[int, int]:
    """Bytes of the trainable weights (x3: weights, gradients, SGD
    momentum), and of everything else (frozen weights, buffers: the bank)."""
    trainable = sum(p.numel() * p.element_size() for p in model.parameters()
                    if p.requires_grad)
    frozen = sum(p.numel() * p.element_size() for p in model.parameters()
                 if not p.requires_grad)
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    return 3 * trainable, frozen + buffers


def saved_bytes(step: Callable[[], object], model: torch.nn.Module) -> int:
    """Bytes autograd saves for the backward pass during ``step``'s
    forward, each storage counted once, the model's weights and buffers
    left out (:func:`state_bytes` counts them): the activations."""
    state = {
        t.untyped_storage().data_ptr()
        for t in list(model.parameters()) + list(model.buffers())
    }
    seen = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in state:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        step()
    return sum(seen.values())


def peak_memory(config: str, batch: int, size: int, device: torch.device,
                bank: str, seed: int) -> dict:
    """Peak memory of a training step of ``config`` at ``batch`` x
    ``size`` x ``size`` (see the module docstring); on a CPU, the bytes
    saved for backward plus the state instead."""
    out = dict(config=config, batch=batch, size=size, device=str(device))
    try:
        model = build_model(config, device)
        prepare_rca(model, bank, seed)
        inputs, samples = make_batch(model, batch, size, device, seed)
        step = make_step(model, inputs, samples)
        weights, other = state_bytes(model)
        out.update(state_mib=round((weights + other) / MIB, 1))
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
            step()
            step()
            torch.cuda.synchronize(device)
            out.update(
                peak_allocated_mib=round(
                    torch.cuda.max_memory_allocated(device) / MIB, 1),
                peak_reserved_mib=round(
                    torch.cuda.max_memory_reserved(device) / MIB, 1))
        else:
            saved = saved_bytes(step, model)
            out.update(
                saved_for_backward_mib=round(saved / MIB, 1),
                estimate_mib=round((saved + weights + other) / MIB, 1))
    except torch.cuda.OutOfMemoryError as exc:
        out['error'] = f'out of memory: {str(exc).splitlines()[0]}'
    finally:
        model = inputs = samples = step = None  # noqa: F841
        if device.type == 'cuda':
            torch.cuda.empty_cache()
    return out


def estimate_memory(config: str,
                    batch: int,
                    size: int,
                    bank: str,
                    sizes: Tuple[int, int],
                    seed: int = 0) -> dict:
    """CPU estimate of a step's peak memory at ``batch`` x ``size``: the
    bytes saved for backward at batch 1 and the two small ``sizes``,
    extrapolated linearly in pixels, times ``batch``, plus the state."""
    device = torch.device('cpu')
    model = build_model(config, device)
    prepare_rca(model, bank, seed)
    saved = []
    for s in sizes:
        inputs, samples = make_batch(model, 1, s, device, seed)
        saved.append(saved_bytes(make_step(model, inputs, samples), model))
    (s0, s1), (b0, b1) = sizes, saved
    per_pixel = (b1 - b0) / (s1 * s1 - s0 * s0)
    fixed = b0 - per_pixel * s0 * s0
    activations = batch * (fixed + per_pixel * size * size)
    weights, other = state_bytes(model)
    return dict(
        config=config,
        batch=batch,
        size=size,
        bank=bank,
        measured_sizes=list(sizes),
        saved_mib_at=[round(b / MIB, 1) for b in saved],
        activations_mib=round(activations / MIB, 1),
        state_mib=round((weights + other) / MIB, 1),
        estimate_mib=round((activations + weights + other) / MIB, 1))


# ---------------------------------------------------------------- sync
def sync_points(step: Callable[[], object], device: torch.device) -> dict:
    """Run ``step`` under ``torch.cuda.set_sync_debug_mode('warn')``; the
    places (innermost rca_mm / OpenMMLab frame) that synchronised."""
    if device.type != 'cuda':
        step()
        return dict(
            applicable=False,
            note='CUDA only: a CPU never waits '
            'for a device',
            points=[])
    step()  # warm-up: allocations, cuDNN autotuning
    torch.cuda.synchronize(device)
    points: Dict[str, dict] = {}
    previous = warnings.showwarning

    def record(message, category, filename, lineno, file=None, line=None):
        if 'synchroniz' not in str(message):
            return previous(message, category, filename, lineno, file, line)
        frames = [
            f for f in traceback.extract_stack()[:-1]
            if re.search(r'(rca_mm|mmseg|mmpretrain|mmengine)/', f.filename)
            and 'gpu_check.py' not in f.filename
        ]
        where = (f'{osp.relpath(frames[-1].filename, REPO)}:'
                 f'{frames[-1].lineno} ({frames[-1].line})'
                 if frames else f'{filename}:{lineno}')
        entry = points.setdefault(
            where, dict(where=where, count=0, message=str(message)))
        entry['count'] += 1

    with warnings.catch_warnings():
        warnings.simplefilter('always')
        warnings.showwarning = record
        torch.cuda.set_sync_debug_mode('warn')
        try:
            step()
        finally:
            torch.cuda.set_sync_debug_mode(0)
            warnings.showwarning = previous
    return dict(
        applicable=True,
        points=sorted(points.values(), key=lambda p: -p['count']))


# ---------------------------------------------------------------- RMS
def feature_rms(model: torch.nn.Module, inputs: torch.Tensor) -> dict:
    """RMS of the backbone feature F on ``inputs``, and D x RMS^2: about
    F . q for a prototype q near F (k-means centres are means of F), the
    logit of Eq. 7 that must stay below float16's 65,504 under AMP."""
    with torch.no_grad():
        feats = model.extract_feat(inputs)
    if isinstance(feats, (list, tuple)):
        feats = feats[-1]
    feats = feats.float()
    rms = float(feats.pow(2).mean().sqrt())
    d = feats.shape[1]
    return dict(
        channels=d,
        rms=rms,
        d_rms2=d * rms * rms,
        fp16_headroom=FP16_MAX / max(d * rms * rms, 1e-12),
        max_abs=float(feats.abs().max()))


def checkpoint_rms(checkpoint: str,
                   data_root: str,
                   config: str,
                   device: torch.device,
                   num: int = 8) -> dict:
    """:func:`feature_rms` of a trained checkpoint on ``num`` images of
    ``data_root`` (its data preprocessor normalises them)."""
    import numpy as np
    from PIL import Image

    from rca_mm.apis import init_model
    model = init_model(
        random_weights_config(osp.join(REPO, config)), checkpoint, device)
    paths = sorted(glob.glob(osp.join(data_root, 'JPEGImages', '*.jpg')))
    images = [
        torch.from_numpy(
            np.asarray(
                Image.open(p).convert('RGB'))[..., ::-1].copy()).permute(
                    2, 0, 1) for p in paths[:num]
    ]
    data = model.data_preprocessor(dict(inputs=images), False)
    out = feature_rms(model, data['inputs'])
    out.update(checkpoint=checkpoint, images=len(images))
    return out


# ---------------------------------------------------------------- timing
def step_time(rca_config: str, base_config: str, batch: int, size: int,
              device: torch.device, warmup: int, repeat: int, bank: str,
              seed: int) -> dict:
    """Median step cost of RCA + EPS and of EPS on one backbone's weights,
    interleaved (``rca_mm.utils.benchmark.interleaved``)."""
    out = dict(
        rca=rca_config,
        baseline=base_config,
        batch=batch,
        size=size,
        bank=bank,
        clock=cost_name(device))
    try:
        rca = build_model(rca_config, device)
        base = build_model(base_config, device)
        base.backbone.load_state_dict(rca.backbone.state_dict())
        prepare_rca(rca, bank, seed)
        inputs, samples = make_batch(rca, batch, size, device, seed)
        fns = dict(
            baseline=step_fn(base, inputs, samples, device),
            rca=step_fn(rca, inputs, samples, device))
        times = interleaved(fns, warmup, repeat)
        med = {
            k: statistics.median(cost(*t, device) for t in v)
            for k, v in times.items()
        }
        out.update(
            # 6 significant digits: a tiny CPU step takes milliseconds,
            # which 4 decimals would round by up to 1.5 %.
            baseline_s=float(f"{med['baseline']:.6g}"),
            rca_s=float(f"{med['rca']:.6g}"),
            ratio=round(med['rca'] / med['baseline'], 3))
    except torch.cuda.OutOfMemoryError as exc:
        out['error'] = f'out of memory: {str(exc).splitlines()[0]}'
    return out


def cmd_measure(args: argparse.Namespace) -> int:
    device = start_benchmark(args)
    tiny = args.tiny
    result = dict(machine=machine_line(device), tiny=tiny, device=str(device))
    # What synchronises in an RCA step (SynthVOC's RCA + EPS model, full
    # bank: the same head code as the VOC configs).
    size, batch = (32, 2) if tiny else (112, 8)
    model = build_model(SYNTHVOC_RCA, device)
    prepare_rca(model, 'tiny', args.seed)
    inputs, samples = make_batch(model, batch, size, device, args.seed)
    result['sync'] = sync_points(make_step(model, inputs, samples), device)
    result['sync'].update(config=SYNTHVOC_RCA, batch=batch, size=size)
    if device.type == 'cuda':
        amp_losses = make_step(model, inputs, samples, amp=True)()
        result['amp_step_losses_finite'] = all(
            bool(torch.isfinite(v).all()) for v in amp_losses.values()
            if torch.is_tensor(v))
    del model
    # Peak memory.
    result['memory'] = {}
    for name, config, b, s in (TINY_MEMORY_CASES if tiny else MEMORY_CASES):
        result['memory'][name] = peak_memory(config, b, s, device,
                                             'tiny' if tiny else 'voc',
                                             args.seed)
        print(f'memory {name}: {result["memory"][name]}', flush=True)
    # RMS of F.
    rms_config, rms_size = (SYNTHVOC_RCA, 32) if tiny else (RCA_R38, 448)
    model = build_model(rms_config, device)
    inputs, _ = make_batch(model, 2, rms_size, device, args.seed)
    result['feature_rms'] = dict(
        random_init=dict(
            feature_rms(model, inputs),
            config=rms_config,
            size=rms_size,
            note='random weights on random inputs'))
    del model, inputs
    if args.checkpoint:
        result['feature_rms']['trained'] = checkpoint_rms(
            args.checkpoint, args.data_root, SYNTHVOC_RCA, device)
    # Step time RCA vs its EPS baseline.
    if tiny:
        timing = step_time(SYNTHVOC_RCA, SYNTHVOC_EPS, 2, 32, device, 0, 1,
                           'tiny', args.seed)
    else:
        timing = step_time(RCA_R38, EPS_R38, 8, 448, device, 2, 5, 'voc',
                           args.seed)
        if 'error' in timing:  # a card too small for the paper's batch
            timing = dict(
                step_time(RCA_R38, EPS_R38, 2, 448, device, 2, 5, 'voc',
                          args.seed),
                batch8_error=timing['error'])
    result['step_time'] = timing
    save_part(args.work_dir, 'measure', result)
    print(json.dumps(result, indent=1))
    return 0


def cmd_estimate_memory(args: argparse.Namespace) -> int:
    start_benchmark(args)
    result = estimate_memory(args.config, args.batch, args.size, args.bank,
                             tuple(args.sizes), args.seed)
    print(json.dumps(result))
    if args.work_dir:
        name = 'estimate_' + osp.splitext(osp.basename(args.config))[0]
        save_part(args.work_dir, f'{name}_b{args.batch}_{args.size}', result)
    return 0


# ---------------------------------------------------------------- summary
def summary_lines(parts: Dict[str, dict]) -> List[str]:
    """The readable summary of the parts."""
    lines = ['rca_mm GPU check']
    env = parts.get('env')
    if env:
        lines.append(f'torch {env["torch"]}, CUDA {env["cuda_build"]}, '
                     f'driver {env["driver"]}')
        for dev in env['devices']:
            lines.append(f'  cuda:{dev["index"]} {dev["name"]}, capability '
                         f'{dev["capability"]}: ' +
                         ('ok' if dev['supported'] else dev['message']))
    for name in sorted(p for p in parts if p.startswith('train_')):
        r = parts[name]
        lines.append(
            f'{name}: {r.get("ranks")} rank(s), banks and prototypes '
            f'identical: {r.get("identical")}, equal to '
            f'{r.get("checkpoint")}: {r.get("equal_to_checkpoint")}, '
            f'finite: {r.get("finite")}, losses finite: '
            f'{r.get("losses_finite")} ({r.get("losses_logged")} logged), '
            f'killed: {r.get("killed")}, {r.get("resumed_from")}, bank '
            f'entries {r.get("bank_written")}, valid prototypes '
            f'{r.get("prototypes_valid")}' +
            (f', ERROR {r["error"]}' if 'error' in r else ''))
    measure_part = parts.get('measure')
    if measure_part:
        sync = measure_part['sync']
        if sync['applicable']:
            lines.append(f'synchronisations in one RCA step: '
                         f'{sum(p["count"] for p in sync["points"])}')
            lines += [
                f'  {p["count"]:3d} x {p["where"]}' for p in sync['points']
            ]
        else:
            lines.append('synchronisations: ' + sync['note'])
        for name, m in measure_part['memory'].items():
            value = (
                m.get('error') or
                (f'peak allocated {m["peak_allocated_mib"]} MiB '
                 f'(reserved {m["peak_reserved_mib"]})' if 'peak_allocated_mib'
                 in m else f'CPU estimate {m["estimate_mib"]} MiB'))
            lines.append(f'memory {name}: {value}')
        for name, r in measure_part['feature_rms'].items():
            lines.append(
                f'RMS of F ({name}, D={r["channels"]}): {r["rms"]:.3g}; '
                f'D x RMS^2 = {r["d_rms2"]:.4g} (float16 max 65504)')
        t = measure_part['step_time']
        lines.append(
            t.get('error') and f'step time: {t["error"]}'
            or f'step time at {t["size"]}x{t["size"]}, batch {t["batch"]}: '
            f'RCA {t["rca_s"]} s, baseline {t["baseline_s"]} s, ratio '
            f'{t["ratio"]} ({t["clock"]} time)')
    return lines


def cmd_summary(args: argparse.Namespace) -> int:
    parts = {}
    for path in sorted(glob.glob(osp.join(args.work_dir, 'parts', '*.json'))):
        with open(path) as f:
            parts[osp.splitext(osp.basename(path))[0]] = json.load(f)
    write_json_atomic(osp.join(args.work_dir, 'gpu_check.json'), parts)
    lines = summary_lines(parts)
    atomic_write_text(
        osp.join(args.work_dir, 'gpu_check.txt'), '\n'.join(lines) + '\n')
    print('\n'.join(lines))
    return 0


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = parser.add_subparsers(dest='command', required=True)
    env = sub.add_parser('env', help='devices, capability, kernels')
    env.add_argument('--work-dir')
    prep = sub.add_parser('prepare', help='data and config of the run')
    prep.add_argument('--work-dir', required=True)
    prep.add_argument('--gpus', type=int, required=True)
    comp = sub.add_parser('compare-ranks', help='banks across ranks')
    comp.add_argument('--work-dir', required=True)
    comp.add_argument('--run', required=True, help="the run's work dir")
    comp.add_argument('--name', required=True, help='part name, train_*')
    meas = sub.add_parser('measure', help='sync, memory, RMS, step time')
    for p in (meas,
              sub.add_parser(
                  'estimate-memory', help='CPU estimate of a step\'s peak')):
        p.add_argument('--work-dir')
        p.add_argument('--device', default='cpu')
        p.add_argument('--threads', type=int, default=None)
        p.add_argument('--seed', type=int, default=0)
    meas.add_argument(
        '--tiny',
        action='store_true',
        help='small configs at 32x32 (seconds on a CPU)')
    meas.add_argument(
        '--checkpoint',
        help='trained SynthVOC RCA + EPS '
        'checkpoint whose feature RMS is measured')
    meas.add_argument('--data-root', help='SynthVOC of --checkpoint')
    est = sub.choices['estimate-memory']
    est.add_argument('--config', required=True)
    est.add_argument('--batch', type=int, required=True)
    est.add_argument('--size', type=int, required=True)
    est.add_argument('--bank', default='voc', choices=sorted(BANKS))
    est.add_argument(
        '--sizes',
        type=int,
        nargs=2,
        default=[64, 96],
        help='the two small sizes measured')
    summ = sub.add_parser('summary', help='gpu_check.json and .txt')
    summ.add_argument('--work-dir', required=True)
    args = parser.parse_args(argv)
    if args.command == 'measure' and args.work_dir is None:
        parser.error('measure needs --work-dir')
    if getattr(args, 'checkpoint', None) and not args.data_root:
        parser.error('--checkpoint needs --data-root')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    return dict(
        env=cmd_env,
        prepare=cmd_prepare,
        measure=cmd_measure,
        summary=cmd_summary,
        **{
            'compare-ranks': cmd_compare_ranks,
            'estimate-memory': cmd_estimate_memory
        })[args.command](
            args)


if __name__ == '__main__':
    sys.exit(main())
