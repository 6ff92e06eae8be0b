"""Loading transforms: image conversions, and errors that name the file."""
import os.path as osp

import numpy as np
import pytest
from PIL import Image

from rca_mm.datasets.transforms import (LoadSaliencyMap, LoadWSSSAnnotations,
                                        LoadWSSSImageFromFile)


def _load(path, **extra):
    return LoadWSSSImageFromFile()(dict(img_path=str(path), **extra))


def test_rgb_image_is_bgr(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (5, 7, 3), np.uint8)
    Image.fromarray(rgb).save(tmp_path / 'x.png')
    out = _load(tmp_path / 'x.png')
    np.testing.assert_array_equal(out['img'], rgb[..., ::-1])
    assert out['img_shape'] == out['ori_shape'] == (5, 7)


def test_grey_and_rgba_are_converted(tmp_path):
    grey = np.arange(35, dtype=np.uint8).reshape(5, 7)
    Image.fromarray(grey).save(tmp_path / 'g.png')
    out = _load(tmp_path / 'g.png')
    assert out['img'].shape == (5, 7, 3)
    np.testing.assert_array_equal(out['img'], np.repeat(grey[..., None], 3, 2))
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 17
    Image.fromarray(rgba, mode='RGBA').save(tmp_path / 'a.png')
    out = _load(tmp_path / 'a.png')
    assert out['img'].shape == (4, 4, 3)
    assert (out['img'][..., 2] == 200).all()
    assert (out['img'][..., 0] == 0).all()


def test_bad_images_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='none.jpg'):
        _load(tmp_path / 'none.jpg')
    rgb = np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)
    Image.fromarray(rgb).save(tmp_path / 't.jpg', quality=95)
    data = (tmp_path / 't.jpg').read_bytes()
    (tmp_path / 't.jpg').write_bytes(data[:len(data) // 2])
    with pytest.raises(ValueError, match=r't\.jpg.*truncated'):
        _load(tmp_path / 't.jpg')
    (tmp_path / 'n.jpg').write_bytes(b'not an image')
    with pytest.raises(ValueError, match=r'n\.jpg.*cannot be decoded'):
        _load(tmp_path / 'n.jpg')
    Image.fromarray(np.full((4, 4), 4000, np.uint16)).save(tmp_path / 'w.png')
    with pytest.raises(ValueError, match=r'w\.png.*16/32-bit'):
        _load(tmp_path / 'w.png')


def _results(tmp_path, shape=(6, 8)):
    Image.fromarray(np.zeros(shape + (3, ), np.uint8)).save(tmp_path / 'i.png')
    return _load(
        tmp_path / 'i.png',
        seg_fields=[],
        num_fg_classes=3,
        seg_map_path=str(tmp_path / 'm.png'),
        sal_path=str(tmp_path / 's.png'))


def test_saliency_map(tmp_path):
    sal = np.arange(48, dtype=np.uint8).reshape(6, 8) * 5
    Image.fromarray(sal).save(tmp_path / 's.png')
    out = LoadSaliencyMap()(_results(tmp_path))
    assert out['gt_saliency'].dtype == np.float32
    np.testing.assert_allclose(out['gt_saliency'], sal / 255., atol=1e-7)
    assert out['seg_fields'] == ['gt_saliency']
    res = _results(tmp_path)
    res['sal_path'] = None
    assert 'gt_saliency' not in LoadSaliencyMap(optional=True)(res)
    with pytest.raises(FileNotFoundError, match='i.png.*sal_path'):
        LoadSaliencyMap()(res)
    Image.fromarray(sal[:, :7]).save(tmp_path / 's.png')
    with pytest.raises(ValueError, match=r's\.png.*7x6 \(WxH\).*i\.png.*8x6'):
        LoadSaliencyMap()(_results(tmp_path))


def test_annotations(tmp_path):
    mask = np.zeros((6, 8), np.uint8)
    mask[1:3, 2:5], mask[0, 0] = 3, 255
    Image.fromarray(mask).save(tmp_path / 'm.png')
    out = LoadWSSSAnnotations()(_results(tmp_path))
    np.testing.assert_array_equal(out['gt_seg_map'], mask)
    assert out['seg_fields'] == ['gt_seg_map']
    mask[5, 5] = 4  # num_fg_classes is 3
    Image.fromarray(mask).save(tmp_path / 'm.png')
    with pytest.raises(ValueError, match=r'm\.png.*value\(s\) \[4\]'):
        LoadWSSSAnnotations()(_results(tmp_path))
    Image.fromarray(mask.astype(np.uint16)).save(tmp_path / 'm.png')
    with pytest.raises(ValueError, match=r'm\.png.*16/32-bit'):
        LoadWSSSAnnotations()(_results(tmp_path))
    Image.fromarray(mask[:5] % 4).save(tmp_path / 'm.png')
    with pytest.raises(ValueError, match='same size'):
        LoadWSSSAnnotations()(_results(tmp_path))
    res = _results(tmp_path)
    res['seg_map_path'] = None
    assert 'gt_seg_map' not in LoadWSSSAnnotations()(res)
    assert osp.exists(tmp_path / 'm.png')
