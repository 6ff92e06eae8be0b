"""tools/test.py --show-dir on a stage-1 classifier: one drawing per image
with the CAM of each tag, the background map, the model's pseudo label
(model.test_cfg.pseudo_label), the saliency map and the GT."""
import os.path as osp

import mmcv
import numpy as np
from mmengine.config import Config
from mmengine.registry import init_default_scope
from PIL import Image

from rca_mm.registry import DATASETS
from rca_mm.visualization import WSSSLocalVisualizer
from tests.conftest import run_tool
from .test_draw_rca_figures import RCA, image_tags

BAND = 14


def dataset_meta(voc_root) -> dict:
    """The classes and palette the test run's dataset gives its
    visualizer."""
    cfg = Config.fromfile(RCA)
    init_default_scope('rca_mm')
    dataset = DATASETS.build(
        dict(cfg.test_dataloader.dataset, data_root=str(voc_root)))
    return dict(
        classes=dataset.metainfo['classes'],
        palette=dataset.metainfo['palette'])


def test_show_dir_draws_the_classifier_panels(rca_checkpoint, voc_root,
                                              tmp_path):
    show = tmp_path / 'show'
    run_tool([
        'python', 'tools/test.py', RCA, rca_checkpoint, '--work-dir',
        tmp_path / 'work', '--out', tmp_path / 'out', '--show-dir', show,
        '--cfg-options', *[
            f'{split}_dataloader.dataset.data_root={voc_root}'
            for split in ('train', 'val', 'test')
        ], 'test_dataloader.num_workers=0',
        'test_dataloader.persistent_workers=False',
        'model.backbone.init_cfg=None', 'model.test_cfg.scales=[1.0]',
        'default_hooks.visualization.interval=1'
    ])
    visualizer = WSSSLocalVisualizer(name='show_dir_check')
    visualizer.dataset_meta = dataset_meta(voc_root)
    names = open(osp.join(
        voc_root, 'ImageSets/Segmentation/train_aug.txt')).read().split()
    drawn = sorted(p.name for p in show.glob('vis_data/vis_image/*.png'))
    assert drawn == sorted(f'test_{n}.jpg_0.png' for n in names)
    for name in names[:4]:
        img = mmcv.imread(
            str(show / 'vis_data/vis_image' / f'test_{name}.jpg_0.png'),
            channel_order='rgb')
        image = mmcv.imread(
            osp.join(voc_root, 'JPEGImages', name + '.jpg'),
            channel_order='rgb')
        h, w = image.shape[:2]
        # image | CAM per tag | background (EPS) | pseudo label | saliency | GT
        panels = 1 + len(image_tags(voc_root, name)) + 4
        assert img.shape == (BAND + h, panels * w, 3)
        np.testing.assert_array_equal(img[BAND:, :w], image)
        # The pseudo label is the one --out wrote (the model's
        # BackgroundMapRecipe), drawn in the dataset's palette; the GT panel
        # checks the drawing.
        label = np.asarray(
            Image.open(tmp_path / 'out' / 'pseudo_labels' / f'{name}.png'))
        gt = np.asarray(
            Image.open(
                osp.join(voc_root, 'SegmentationClassAug', name + '.png')))
        assert label.shape == (h, w)
        pseudo = 1 + len(image_tags(voc_root, name)) + 1
        for column, labels in ((pseudo, label), (panels - 1, gt)):
            panel = img[BAND:, column * w:(column + 1) * w]
            np.testing.assert_array_equal(
                panel, visualizer.draw_label_map(image, labels))
