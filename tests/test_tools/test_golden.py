"""Golden run: the whole pipeline (RCA on OAA+, 2 epochs, its pseudo labels,
a short stage 2 on them and its validation) on tiny SynthVOC, seeded and
single-threaded, with its outputs pinned.

Every other end-to-end test compares two runs of today's code (resumed vs
uninterrupted, one vs two processes), so a change that both runs share
passes them. This one compares with numbers written down: a refactor that
changes what any step computes, or what stage 1 writes and stage 2 reads,
fails here.

When a change is meant to alter the outputs, run this file with
``RCA_MM_GOLDEN_PRINT=1`` (``pytest -s``) to print the new values, and say
in the commit why they changed.
"""
import hashlib
import json
import os
import os.path as osp

import numpy as np
import pytest
from PIL import Image

from rca_mm.datasets.synthvoc import generate_synthvoc
from tests.conftest import SERIAL_LOADERS, run_tool

STAGE1 = 'configs/synthvoc/rca-oaa_r18-w16_8e_synthvoc-112x112.py'
STAGE2 = 'configs/synthvoc/deeplabv2_r18-w16-d8_1k_synthvoc-112x112.py'
SCRATCH = ['model.backbone.init_cfg=None']
STAGE1_OPTIONS = [
    'train_cfg.max_epochs=2', 'train_cfg.val_interval=2',
    'train_dataloader.batch_size=8'
] + SERIAL_LOADERS + SCRATCH
STAGE2_OPTIONS = [
    'train_cfg.max_iters=6', 'train_cfg.val_interval=6',
    'train_dataloader.batch_size=4'
] + SERIAL_LOADERS + SCRATCH

# Written by the golden run at the commit that added this file.
GOLDEN_SUMMARY = {
    'pseudo_label_miou_full': 9.73,
    'pseudo_label_miou_confident': 66.82,
    'pseudo_label_coverage': 28.95,
    'seg_val_miou': 15.73,
}
GOLDEN_LABELS_SHA256 = (
    'f085a6bc7ed454814edf5dba1adbf530603c2c412bb49185da3576aec3d5669b')


def labels_digest(label_dir: str) -> str:
    """SHA-256 over the pseudo labels' names and pixel values, in name
    order: independent of the PNG encoder, sensitive to every pixel."""
    digest = hashlib.sha256()
    for name in sorted(os.listdir(label_dir)):
        digest.update(name.encode())
        digest.update(np.asarray(Image.open(osp.join(label_dir, name)))
                      .astype(np.uint8).tobytes())
    return digest.hexdigest()


@pytest.fixture(scope='module')
def golden_run(tmp_path_factory):
    root = tmp_path_factory.mktemp('golden')
    data = str(root / 'synthvoc')
    generate_synthvoc(data, num_train=16, num_val=4, num_train_subset=8,
                      show_progress=False)
    work = root / 'work'
    log = run_tool([
        'python', 'tools/run_pipeline.py', STAGE1, STAGE2, '--work-dir',
        work, '--data-root', data, '--seed', '0', '--until', 'val',
        '--stage1-cfg-options'
    ] + STAGE1_OPTIONS + ['--stage2-cfg-options'] + STAGE2_OPTIONS,
                   env=dict(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1'))
    summary = json.loads((work / 'summary.json').read_text())
    digest = labels_digest(str(work / 'pseudo' / 'pseudo_labels'))
    if os.environ.get('RCA_MM_GOLDEN_PRINT'):
        print({k: summary[k] for k in GOLDEN_SUMMARY}, digest)
    return work, summary, digest, log


def test_stage2_trains_on_the_labels_stage1_wrote(golden_run):
    """The hand-off: stage 2's training set is the pseudo-label dir that
    the export step wrote, one label per training image."""
    work, summary, _, log = golden_run
    labels = work / 'pseudo' / 'pseudo_labels'
    assert len(list(labels.iterdir())) == 16
    assert ('train_dataloader.dataset.data_prefix.seg_map_path=' +
            str(labels)) in log
    assert summary['seg_val_miou'] is not None
    assert summary['seg_val_miou_crf'] is None  # --until val


def test_outputs_equal_the_golden_run(golden_run):
    _, summary, digest, _ = golden_run
    assert {k: summary[k] for k in GOLDEN_SUMMARY} == GOLDEN_SUMMARY
    assert digest == GOLDEN_LABELS_SHA256
