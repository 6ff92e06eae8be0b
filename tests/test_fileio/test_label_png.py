"""Label PNGs: the stage-1 writer and the reader, and the round trip into
the stage-2 dataset."""
import os

import numpy as np
import pytest
from mmengine.registry import init_default_scope
from PIL import Image

import rca_mm.datasets.transforms.loading as loading
import rca_mm.evaluation.metrics.pseudo_label_writer as writer
from rca_mm.datasets import WSSSVOCDataset
from rca_mm.fileio import (label_map_classes, read_label_png,
                           read_voc_label_png, save_label_png, voc_palette)


def test_read_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.png'):
        read_label_png(str(tmp_path / 'nope.png'))
    rgb = tmp_path / 'rgb.png'
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(rgb)
    with pytest.raises(ValueError, match='mode RGB'):
        read_label_png(str(rgb))
    grey = tmp_path / 'grey.png'
    Image.fromarray(np.full((2, 2), 255, np.uint8)).save(grey)
    np.testing.assert_array_equal(read_label_png(str(grey)), 255)
    with pytest.raises(ValueError, match=r"cannot write '.*x\.png'"):
        save_label_png(np.zeros((2, 2, 1), np.uint8), str(tmp_path / 'x.png'))
    with pytest.raises(ValueError, match='0..255'):
        save_label_png(np.full((2, 2), 256), str(tmp_path / 'x.png'))
    assert not (tmp_path / 'x.png').exists()


def test_pseudo_label_png_round_trip(tmp_path):
    """What stage 1 writes is what stage 2 reads: same indices, 255 kept,
    a VOC palette PNG."""
    # The writer writes, and the loading transform reads, with this pair.
    assert writer.save_label_png is save_label_png
    assert loading.read_label_png is read_label_png
    rng = np.random.default_rng(0)
    h, w = 7, 11
    label = rng.integers(0, 21, (h, w)).astype(np.uint8)
    label[rng.random((h, w)) < 0.3] = 255
    label[0, :3] = (0, 20, 255)
    (tmp_path / 'JPEGImages').mkdir()
    Image.fromarray(rng.integers(0, 255, (h, w, 3), np.uint8)).save(
        tmp_path / 'JPEGImages' / 'a.jpg')
    (tmp_path / 'train.txt').write_text('a\n')
    png = str(tmp_path / 'pseudo_labels' / 'a.png')
    save_label_png(label, png)  # the directory is created

    assert os.listdir(tmp_path / 'pseudo_labels') == ['a.png']
    with Image.open(png) as img:
        assert img.format == 'PNG' and img.mode == 'P'
        palette = np.array(img.getpalette()).reshape(-1, 3)[:256]
    np.testing.assert_array_equal(palette, voc_palette())
    read = read_label_png(png)
    assert read.dtype == np.uint8
    np.testing.assert_array_equal(read, label)
    assert label_map_classes(png, 21) == sorted(
        int(c) - 1 for c in np.unique(label) if 0 < c < 255)

    init_default_scope('rca_mm')
    dataset = WSSSVOCDataset(
        with_tags=False,
        data_root=str(tmp_path),
        ann_file='train.txt',
        data_prefix=dict(
            img_path='JPEGImages',
            seg_map_path=str(tmp_path / 'pseudo_labels')),
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadWSSSAnnotations'),
            dict(type='PackSegInputs')
        ])
    gt = dataset[0]['data_samples'].gt_sem_seg.data[0].numpy()
    np.testing.assert_array_equal(gt, label)
    assert (gt == 255).sum() == (label == 255).sum() > 0


def test_colour_coded_voc_masks_are_read_as_indices(tmp_path):
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[0, 0] = (128, 0, 0)  # VOC colour of class 1
    Image.fromarray(rgb).save(tmp_path / 'c.png')
    assert read_voc_label_png(str(tmp_path / 'c.png')).tolist() == [[1, 0],
                                                                    [0, 0]]
    # A palette PNG is read as its indices, as read_label_png reads it.
    save_label_png(np.array([[3, 255]], np.uint8), str(tmp_path / 'p.png'))
    assert read_voc_label_png(str(tmp_path / 'p.png')).tolist() == [[3, 255]]
    rgb[1, 1] = (1, 2, 3)
    Image.fromarray(rgb).save(tmp_path / 'c.png')
    with pytest.raises(ValueError, match=r'c\.png.*not in the VOC colour'):
        read_voc_label_png(str(tmp_path / 'c.png'))
