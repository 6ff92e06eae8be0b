"""PseudoLabelWriter: each labelled image's PNG (and CAMs) written
atomically under output_dir; failed writes counted once and named."""
import os
import os.path as osp

import numpy as np
import torch
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample
from PIL import Image

from rca_mm.fileio import load_cam_npz, read_label_png
from rca_mm.registry import METRICS

H, W = 6, 8


def samples():
    """Three images: two labelled (tags (1, 0, 1), (0, 1, 0)), one the
    model could not label."""
    rng = np.random.default_rng(0)
    out = []
    for i, tags in enumerate([(1, 0, 1), (0, 1, 0), (1, 1, 0)]):
        sample = SegDataSample(
            metainfo=dict(img_path=f'/data/img{i}.jpg', img_name=f'img{i}'))
        cams = rng.random((3, H, W)).astype(np.float32)
        cams[np.asarray(tags) == 0] = 0
        sample.pred_cams = PixelData(data=torch.from_numpy(cams))
        sample.gt_img_labels = torch.tensor(tags, dtype=torch.float32)
        if i < 2:
            labels = rng.integers(0, 4, (H, W)).astype(np.uint8)
            labels[0, 0] = 255
            sample.pred_sem_seg = PixelData(
                data=torch.from_numpy(labels)[None])
        else:
            sample.set_metainfo(dict(pseudo_label_error='ValueError: x'))
        out.append(sample)
    return out


def run(data, **kwargs):
    writer = METRICS.build(dict(type='PseudoLabelWriter', **kwargs))
    writer.process({}, [s.to_dict() for s in data[:1]])
    writer.process({}, [s.to_dict() for s in data[1:]])
    return writer.evaluate(len(data))


def test_writes_the_labels_and_cams(tmp_path):
    data = samples()
    out = str(tmp_path / 'out')
    assert run(
        data, output_dir=out, save_cams=True) == {
            'pseudo_label_writer/num_failed': 0
        }
    assert sorted(os.listdir(osp.join(
        out, 'pseudo_labels'))) == ['img0.png', 'img1.png']
    assert sorted(os.listdir(osp.join(out,
                                      'cams'))) == ['img0.npz', 'img1.npz']
    for sample in data[:2]:
        png = osp.join(out, 'pseudo_labels', sample.img_name + '.png')
        assert Image.open(png).mode == 'P'
        np.testing.assert_array_equal(
            read_label_png(png), sample.pred_sem_seg.data[0].numpy())
        npz = osp.join(out, 'cams', sample.img_name + '.npz')
        with np.load(npz) as archive:
            assert archive['cams'].dtype == np.float16
        class_ids, cams = load_cam_npz(npz)
        idx = np.flatnonzero(sample.gt_img_labels.numpy())
        np.testing.assert_array_equal(class_ids, idx + 1)
        np.testing.assert_allclose(
            cams, sample.pred_cams.data.numpy()[idx], atol=1e-3)
    # Without save_cams: the labels only.
    out2 = str(tmp_path / 'out2')
    run(data, output_dir=out2)
    assert os.listdir(out2) == ['pseudo_labels']


def test_a_crash_mid_write_leaves_no_partial_png(tmp_path, monkeypatch,
                                                 log_messages):
    data = samples()
    out = str(tmp_path / 'out')
    real_save = Image.Image.save

    def save_then_crash(image, path, *args, **kwargs):  # the PNG encoder
        real_save(image, path, *args, **kwargs)
        assert osp.isfile(path)
        raise OSError('disk full')

    monkeypatch.setattr(Image.Image, 'save', save_then_crash)
    assert run(data, output_dir=out) == {'pseudo_label_writer/num_failed': 2}
    assert os.listdir(osp.join(out, 'pseudo_labels')) == []
    log = log_messages()
    assert f'2 images could not be written under {out}' in log
    for name in ('img0', 'img1'):
        assert f'{name}: OSError: disk full' in log
    monkeypatch.undo()
    # Run again: everything is written.
    assert run(data, output_dir=out) == {'pseudo_label_writer/num_failed': 0}
    assert sorted(os.listdir(osp.join(
        out, 'pseudo_labels'))) == ['img0.png', 'img1.png']


def test_failures_of_the_ranks_count_once_per_image():
    """The sampler's padding repeats an image on another rank: its failure
    is one."""
    writer = METRICS.build(dict(type='PseudoLabelWriter', output_dir='x'))
    ranks = [[('img0', 'OSError: a'), ('img2', 'OSError: b')],
             [('img1', 'OSError: c'), ('img0', 'OSError: a')]]
    assert writer.compute_metrics(ranks) == dict(num_failed=3)
