"""Golden runs: RCA through the whole pipeline on tiny SynthVOC, seeded,
from scratch, with its outputs pinned to numbers written down.

Every other end-to-end test compares two runs of today's code (resumed vs
uninterrupted, one vs two processes), so a change that both runs share
passes them. These compare with numbers: a refactor that changes what any
step computes, or what stage 1 writes and stage 2 reads, fails here.

Two pipelines (16 training images, 4 val images, stage 1 from random
weights), each with RCA's parts live. At the paper's gate (0.7) no region
of a classifier 4 steps old enters the bank: the bank stays empty, the
prototypes invalid and ``loss_rsc`` 0 (what an earlier golden run pinned).
Here ``model.head.gate_threshold=0.5`` writes the bank from the first step:

- ``eps``: RCA on EPS, stage 1 for 2 epochs of 2 steps (the contrast on in
  epoch 2, the prototypes clustered from the bank at its start), its
  pseudo labels exported through the config's multi-scale + flip inference
  (scales 1.0, 0.5, 1.5, each flipped too), stage 2 for 2 iterations on
  them, and stage 2's validation without and with dense CRF (stage 2 this
  young predicts background everywhere, so its CRF leaves the score);
- ``oaa``: RCA on OAA+, the same stage 1, its pseudo labels from the maps
  the OAA hook accumulated, through the saliency recipe with PSA's dense
  CRF (``model.test_cfg.pseudo_label.crf=True``; without it the same maps
  scored 13.76 / 76.95 / 29.9 full mIoU / confident mIoU / coverage,
  with it 4.47 / 57.14 / 17.33).

The machine: a CPU run repeats to the last digit on one machine but not
across machines, because another vector instruction set sums floats in
another order and training turns that rounding into another run. The runs
therefore pin every kernel library to AVX2 and one thread
(``tests.conftest.PINNED_KERNELS``: torch's own kernels through
``ATEN_CPU_CAPABILITY``, oneDNN's convolutions through
``ONEDNN_MAX_CPU_ISA``, MKL's matrix products through
``MKL_ENABLE_INSTRUCTIONS``). AVX2 is on every x86-64 CI machine of the
last ten years; torch falls back to other kernels silently where it is
missing, so ``test_the_pinned_kernels_take_effect`` checks that it took.
Measured on an AVX-512 machine, the runs with torch's kernels on AVX-512
(nothing pinned), AVX2 (pinned) and its default kernels gave the same
scores, pseudo labels, bank and prototypes, and ``loss_rsc`` values that
differ from the 7th significant digit on. So the scores are compared to
0.01 (the metrics' own rounding), the losses to a relative 1e-4, and the
pseudo labels, bank and prototype counts exactly.

When a change is meant to alter the outputs, run this file with
``RCA_MM_GOLDEN_PRINT=1`` (``pytest -s``) to print the new values, and say
in the commit why they changed.
"""
import hashlib
import json
import os
import os.path as osp
import re

import numpy as np
import pytest
from PIL import Image

from rca_mm.datasets.synthetic import generate_synthvoc
from rca_mm.utils.safe_checkpoint import safe_torch_load
from tests.conftest import PINNED_KERNELS, SERIAL_LOADERS, run_tool

RCA_EPS = 'configs/synthvoc/rca-eps_r18-w16_8e_synthvoc-112x112.py'
RCA_OAA = 'configs/synthvoc/rca-oaa_r18-w16_8e_synthvoc-112x112.py'
STAGE2 = 'configs/synthvoc/deeplabv2_r18-w16-d8_1k_synthvoc-112x112.py'
SCRATCH = ['model.backbone.init_cfg=None']
STAGE1_OPTIONS = [
    'train_cfg.max_epochs=2', 'train_cfg.val_interval=2',
    'train_dataloader.batch_size=8', 'default_hooks.logger.interval=1',
    'model.head.gate_threshold=0.5'
] + SERIAL_LOADERS + SCRATCH
STAGE2_OPTIONS = [
    'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
    'train_dataloader.batch_size=4'
] + SERIAL_LOADERS + SCRATCH
# name: stage-1 config, the last step, its own stage-1 options.
RUNS = dict(
    eps=(RCA_EPS, 'val_crf', []),
    oaa=(RCA_OAA, 'pseudo', ['model.test_cfg.pseudo_label.crf=True']),
)

# Written by the golden runs with PINNED_KERNELS (see the docstring for
# how to print them again).
GOLDEN = dict(
    eps=dict(
        summary=dict(
            pseudo_label_miou_full=10.46,
            pseudo_label_miou_confident=10.46,
            pseudo_label_coverage=100.0,
            seg_val_miou=15.73,
            seg_val_miou_crf=15.73),
        labels_sha256='081120203f0ab82d66a8c4a0f90ba88d'
        '334e5c1ca0e56198e6e3784e091cb0b9',
        bank_written=4,
        prototypes_valid=4,
        loss_rsc=[0.0, 0.0, 0.0024174312129616737, 0.004071728093549609],
    ),
    oaa=dict(
        summary=dict(
            pseudo_label_miou_full=4.47,
            pseudo_label_miou_confident=57.14,
            pseudo_label_coverage=17.33),
        labels_sha256='61e76331f2e473bcfb9a3f13c0ab2b80'
        'e2f9426ea7d6e6496cc83b26057e49fe',
        bank_written=8,
        prototypes_valid=7,
        loss_rsc=[0.0, 0.0, 0.004242282981673877, 0.0064572005067020655],
    ),
)
SCORE_KEYS = ('pseudo_label_miou_full', 'pseudo_label_miou_confident',
              'pseudo_label_coverage', 'seg_val_miou', 'seg_val_miou_crf')


def labels_digest(label_dir: str) -> str:
    """SHA-256 over the pseudo labels' names and pixel values, in name
    order: independent of the PNG encoder, sensitive to every pixel."""
    digest = hashlib.sha256()
    for name in sorted(os.listdir(label_dir)):
        digest.update(name.encode())
        digest.update(
            np.asarray(Image.open(osp.join(label_dir,
                                           name))).astype(np.uint8).tobytes())
    return digest.hexdigest()


def stage1_losses(work) -> list:
    """``(epoch, iter, loss_rsc)`` of every stage-1 step, from the
    training's scalars (the logger writes every step)."""
    scalars, = (work / 'stage1').glob('*/vis_data/scalars.json')
    losses = []
    for line in scalars.read_text().splitlines():
        record = json.loads(line)
        if 'loss_rsc' in record:
            losses.append(
                (record['epoch'], record['iter'], record['loss_rsc']))
    return losses


def run_golden(root, name: str, env=PINNED_KERNELS) -> dict:
    """Run the pipeline ``name`` of ``RUNS`` in ``root`` and read back
    what the tests compare."""
    config, until, options = RUNS[name]
    data = str(root / 'synthvoc')
    if not osp.isdir(data):
        generate_synthvoc(
            data,
            num_train=16,
            num_val=4,
            num_train_subset=8,
            show_progress=False)
    work = root / name
    log = run_tool(
        [
            'python', 'tools/run_pipeline.py', config, STAGE2, '--work-dir',
            work, '--data-root', data, '--seed', '0', '--until', until,
            '--stage1-cfg-options'
        ] + STAGE1_OPTIONS + options + ['--stage2-cfg-options'] +
        STAGE2_OPTIONS,
        env=env)
    summary = json.loads((work / 'summary.json').read_text())
    state = safe_torch_load(str(work / 'stage1' / 'epoch_2.pth'))['state_dict']
    stage1_log = (work / 'logs' / 'stage1.log').read_text()
    result = dict(
        summary={k: summary[k]
                 for k in SCORE_KEYS if summary[k] is not None},
        labels_sha256=labels_digest(str(work / 'pseudo' / 'pseudo_labels')),
        bank_written=int(state['head.memory_bank.written'].sum()),
        prototypes_valid=int(state['head.aggregation.prototype_valid'].sum()),
        loss_rsc=[loss for _, _, loss in stage1_losses(work)],
        bank_slots=int(state['head.memory_bank.written'].numel()),
        prototype_log=re.findall(r'RCA prototypes: .*', stage1_log),
        work=work,
        log=log)
    if os.environ.get('RCA_MM_GOLDEN_PRINT'):
        print(name, {k: result[k] for k in GOLDEN[name]})
    return result


@pytest.fixture(scope='module')
def golden_root(tmp_path_factory):
    return tmp_path_factory.mktemp('golden')


@pytest.fixture(scope='module')
def eps_run(golden_root):
    return run_golden(golden_root, 'eps')


@pytest.fixture(scope='module')
def oaa_run(golden_root):
    return run_golden(golden_root, 'oaa')


def test_the_pinned_kernels_take_effect():
    """torch ignores an ATEN_CPU_CAPABILITY it cannot use (an unknown
    value, a CPU without it); the golden numbers hold for AVX2 only."""
    out = run_tool([
        'python', '-c', 'import torch; '
        'print(torch.backends.cpu.get_cpu_capability(), '
        'torch.get_num_threads())'
    ],
                   env=PINNED_KERNELS)
    assert out.split() == [
        'AVX2', '1'
    ], ('the golden runs need AVX2 kernels (torch reports '
        f'{out.strip()}); on this CPU compare with tolerances only')


def test_stage2_trains_on_the_labels_stage1_wrote(eps_run):
    """The hand-off: stage 2's training set is the pseudo-label dir that
    the export step wrote, one label per training image."""
    labels = eps_run['work'] / 'pseudo' / 'pseudo_labels'
    assert len(list(labels.iterdir())) == 16
    assert ('train_dataloader.dataset.data_prefix.seg_map_path=' +
            str(labels)) in eps_run['log']
    summary = eps_run['summary']
    assert summary['seg_val_miou'] is not None
    assert summary['seg_val_miou_crf'] is not None  # --until val_crf


@pytest.mark.parametrize('name', ['eps', 'oaa'])
def test_rca_parts_are_live(name, request):
    """The bank is written, the prototypes come from it, and the contrast
    loss is on in epoch 2 and off in the warm-up epoch 1."""
    run = request.getfixturevalue(f'{name}_run')
    assert 0 < run['bank_written'] <= run['bank_slots']
    assert run['prototypes_valid'] > 0
    assert run['prototype_log'] and \
        not run['prototype_log'][0].startswith('RCA prototypes: 0 ')
    losses = stage1_losses(run['work'])
    assert [e for e, _, _ in losses] == [1, 1, 2, 2]
    assert all(loss == 0 for e, _, loss in losses if e == 1)
    assert all(loss > 0 for e, _, loss in losses if e == 2)


@pytest.mark.parametrize('name', ['eps', 'oaa'])
def test_outputs_equal_the_golden_run(name, request):
    run = request.getfixturevalue(f'{name}_run')
    golden = GOLDEN[name]
    assert run['bank_written'] == golden['bank_written']
    assert run['prototypes_valid'] == golden['prototypes_valid']
    np.testing.assert_allclose(
        run['loss_rsc'], golden['loss_rsc'], rtol=1e-4, atol=0)
    assert set(run['summary']) == set(golden['summary'])
    for key, value in golden['summary'].items():
        assert run['summary'][key] == pytest.approx(value, abs=0.01), key
    assert run['labels_sha256'] == golden['labels_sha256']
