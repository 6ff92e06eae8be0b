"""tools/test.py --amp on a stage-1 RCA classifier: each test step under
autocast (bfloat16 on CPU), the CAMs and pseudo labels as in float32 up to
the rounding of the maps."""
import json
import os.path as osp

import numpy as np
from PIL import Image

from tests.conftest import run_tool
from .test_draw_rca_figures import RCA


def export(checkpoint, voc_root, out_dir, *extra):
    run_tool([
        'python', 'tools/test.py', RCA, checkpoint, '--work-dir',
        out_dir / 'work', '--out', out_dir / 'out', '--metrics-json',
        out_dir / 'metrics.json', *extra, '--cfg-options', *[
            f'{split}_dataloader.dataset.data_root={voc_root}'
            for split in ('train', 'val', 'test')
        ], 'test_dataloader.num_workers=0',
        'test_dataloader.persistent_workers=False',
        'model.backbone.init_cfg=None', 'model.test_cfg.scales=[1.0]'
    ])
    with open(out_dir / 'metrics.json') as f:
        metrics = json.load(f)
    labels = {
        p.stem: np.array(Image.open(p))
        for p in sorted((out_dir / 'out' / 'pseudo_labels').glob('*.png'))
    }
    return metrics, labels


def test_amp_export_agrees_with_float32(rca_checkpoint, voc_root, tmp_path):
    full, full_labels = export(rca_checkpoint, voc_root, tmp_path / 'fp32')
    amp, amp_labels = export(rca_checkpoint, voc_root, tmp_path / 'amp',
                             '--amp')
    # The test loop ran under autocast (mmengine's TestLoop fp16 flag).
    dumped = open(osp.join(tmp_path / 'amp' / 'work',
                           osp.basename(RCA))).read()
    assert "test_cfg = dict(fp16=True, type='TestLoop')" in dumped
    assert amp['num_failed'] == 0 and full['num_failed'] == 0
    names = open(osp.join(
        voc_root, 'ImageSets/Segmentation/train_aug.txt')).read().split()
    assert sorted(amp_labels) == sorted(full_labels) == sorted(names)
    same = sum(int((amp_labels[n] == full_labels[n]).sum()) for n in names)
    total = sum(full_labels[n].size for n in names)
    # Measured: 99.8 % of the pixels, mIoU 36.96 vs 37.01 (bfloat16).
    assert same / total > 0.99
    assert abs(amp['mIoU_full'] - full['mIoU_full']) < 1.0
