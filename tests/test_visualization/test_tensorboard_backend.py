"""mmengine's TensorboardVisBackend beside the LocalVisBackend, as
docs/visualization.md switches it on (optional: needs `tensorboard`,
requirements/optional.txt)."""
import glob
import json
import os.path as osp

import pytest
from mmengine.runner import Runner

from rca_mm.testing.tiny_runner import tiny_stage1_cfg, write_tiny_synthvoc
from tests.conftest import REPO

pytest.importorskip('tensorboard')
from tensorboard.backend.event_processing.event_accumulator import \
    EventAccumulator  # noqa: E402

CONFIG = osp.join(REPO, 'configs', 'synthvoc',
                  'rca_r18-w16_8e_synthvoc-112x112.py')


def test_training_scalars_reach_tensorboard(tmp_path):
    root = write_tiny_synthvoc(str(tmp_path / 'data'), num_train=4, num_val=1)
    cfg = tiny_stage1_cfg(
        CONFIG, root, str(tmp_path / 'work'), max_epochs=2, name='tb_backend')
    cfg.visualizer.vis_backends = [
        dict(type='LocalVisBackend'),
        dict(type='TensorboardVisBackend')
    ]
    Runner.from_cfg(cfg).train()

    (scalars, ) = glob.glob(str(tmp_path / 'work/*/vis_data/scalars.json'))
    with open(scalars) as f:
        lines = [json.loads(line) for line in f]
    (events, ) = glob.glob(
        str(tmp_path / 'work/*/vis_data/events.out.tfevents.*'))
    acc = EventAccumulator(events)
    acc.Reload()
    tags = acc.Tags()['scalars']
    for key in ('loss', 'loss_rsc', 'loss_cls_o', 'lr'):
        assert key in tags
        logged = [(ln['step'], ln[key]) for ln in lines if key in ln]
        drawn = [(e.step, e.value) for e in acc.Scalars(key)]
        assert [s for s, _ in drawn] == [s for s, _ in logged]
        assert [v for _, v in drawn] == pytest.approx([v for _, v in logged],
                                                      rel=1e-6)
    assert len(logged) == 2  # 4 images, batch 4, 2 epochs
