"""tools/dataset_converters/{voc_aug,coco2014}.py on tiny fixtures in the
real formats (SBD .mat structs, COCO instances JSON)."""
import importlib.util
import json
import os
import os.path as osp
import shutil

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from rca_mm.datasets import WSSSCOCODataset, WSSSVOCDataset
from rca_mm.testing.voc_layout import write_voc_layout
from ..conftest import REPO, run_tool

CONVERTERS = osp.join(REPO, 'tools', 'dataset_converters')


def _module(name):
    spec = importlib.util.spec_from_file_location(
        f'converter_{name}', osp.join(CONVERTERS, name + '.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _png(path):
    return np.array(Image.open(path))


def _lines(path):
    with open(path) as f:
        return f.read().split('\n')[:-1]


def test_voc_aug(tmp_path):
    voc = write_voc_layout(
        str(tmp_path / 'VOC2012'), num_train=6, num_val=2, num_train_subset=3)
    names = [f'2007_{i:06d}' for i in range(8)]
    aug = osp.join(voc, 'SegmentationClassAug')
    masks = {n: _png(osp.join(aug, n + '.png')) for n in names}
    # VOC's own masks for VOC train (0-2) and val (6, 7).
    os.makedirs(osp.join(voc, 'SegmentationClass'))
    for n in names[:3] + names[6:]:
        shutil.copy(
            osp.join(aug, n + '.png'),
            osp.join(voc, 'SegmentationClass', n + '.png'))
    shutil.rmtree(aug)
    os.remove(osp.join(voc, 'ImageSets/Segmentation/train_aug.txt'))
    # SBD: train 0-3, val 4-6 (6 is VOC val: excluded from train_aug).
    sbd = tmp_path / 'benchmark_RELEASE' / 'dataset'
    os.makedirs(sbd / 'cls')
    sbd_masks = {}
    boundaries = np.empty((20, 1), object)  # a cell of sparse maps in SBD
    for i in range(20):
        boundaries[i, 0] = np.zeros((1, 1), np.uint8)
    for n in names[:7]:
        m = masks[n].copy()
        m[m == 255] = 0  # SBD has no ignore border
        sbd_masks[n] = m
        savemat(
            str(sbd / 'cls' / (n + '.mat')), {
                'GTcls': {
                    'Segmentation': m,
                    'Boundaries': boundaries,
                    'CategoriesPresent': np.unique(m[m > 0])
                }
            })
    (sbd / 'train.txt').write_text('\n'.join(names[:4]) + '\n')
    (sbd / 'val.txt').write_text('\n'.join(names[4:7]) + '\n')

    out = run_tool([
        'python',
        osp.join(CONVERTERS, 'voc_aug.py'), voc,
        str(tmp_path / 'benchmark_RELEASE'), '--nproc', '2'
    ])
    assert 'train_aug: 6' in out
    sets = osp.join(voc, 'ImageSets/Segmentation')
    assert _lines(osp.join(sets, 'train_aug.txt')) == names[:6]
    for n in names:
        expected = masks[n] if n in names[:3] + names[6:] else sbd_masks[n]
        written = Image.open(osp.join(aug, n + '.png'))
        assert written.mode == 'P'
        np.testing.assert_array_equal(np.array(written), expected)
    tags = _lines(osp.join(sets, 'train_aug_cls.txt'))
    for line, n in zip(tags, names[:6]):
        m = masks[n]
        exp = sorted(int(v) - 1 for v in np.unique(m) if 0 < v < 255)
        assert line == ' '.join([n] + [str(c) for c in exp])
    assert len(_lines(osp.join(sets, 'val_cls.txt'))) == 2
    # The dataset reads the tag file and the masks to the same tags.
    by_file = WSSSVOCDataset(
        data_root=voc,
        cls_label_file='ImageSets/Segmentation/train_aug_cls.txt')
    by_mask = WSSSVOCDataset(data_root=voc)
    assert [by_file.get_data_info(i)['img_labels'] for i in range(6)
            ] == [by_mask.get_data_info(i)['img_labels'] for i in range(6)]
    # Resumable: existing outputs are kept, no temporary files are left.
    marker = osp.join(aug, names[4] + '.png')
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(marker)
    _module('voc_aug').main([voc, str(tmp_path / 'benchmark_RELEASE')])
    assert (_png(marker) == 0).all()
    assert not [f for f in os.listdir(aug) if f.endswith('.tmp')]
    assert _lines(osp.join(sets, 'train_aug_cls.txt'))[4] == names[4]


def test_voc_aug_errors(tmp_path):
    conv = _module('voc_aug')
    with pytest.raises(FileNotFoundError, match='no cls/ directory'):
        conv.find_dir(str(tmp_path), 'dataset', 'cls', 'pass SBD')
    (tmp_path / 'dataset' / 'cls').mkdir(parents=True)
    assert conv.find_dir(str(tmp_path), 'dataset', 'cls',
                         'pass SBD') == str(tmp_path / 'dataset')
    savemat(str(tmp_path / 'x.mat'), {'other': np.zeros(3)})
    with pytest.raises(ValueError, match=r'x\.mat.*GTcls'):
        conv.read_sbd_mat(str(tmp_path / 'x.mat'))


@pytest.mark.parametrize('name,option', [('voc_aug', '--nproc'),
                                         ('coco2014', '--crowd')])
def test_help(name, option, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _module(name).main(['--help'])
    assert exit_info.value.code == 0 and option in capsys.readouterr().out


# Real COCO category ids: 80 in 1..90.
COCO_IDS = [
    i for i in range(1, 91)
    if i not in (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)
]


def _uncompressed_rle(mask):
    flat = mask.flatten(order='F').astype(np.uint8)
    counts, value, run = [], 0, 0
    for v in flat:
        if v == value:
            run += 1
        else:
            counts.append(run)
            value, run = v, 1
    counts.append(run)
    return {'counts': counts, 'size': list(mask.shape)}


def _write_coco(root):
    from pycocotools import mask as mask_utils
    h, w = 20, 30
    car = np.zeros((h, w), np.uint8, order='F')
    car[2:8, 3:12] = 1
    crowd = np.zeros((h, w), np.uint8)
    crowd[10:18, 15:28] = 1
    car_rle = mask_utils.encode(np.asfortranarray(car))
    car_rle['counts'] = car_rle['counts'].decode()
    keys = ('id', 'image_id', 'category_id', 'iscrowd', 'area', 'segmentation')
    anns = [
        dict(zip(keys, ann)) for ann in [
            # image 1: a big person square, a small dog inside it (polygons)
            (1, 1, 1, 0, 300., [[0, 0, 20, 0, 20, 15, 0, 15]]),
            (2, 1, 18, 0, 16., [[4, 4, 8, 4, 8, 8, 4, 8]]),
            # image 2: a car (compressed RLE), a crowd of people (RLE counts)
            (3, 2, 3, 0, 54., car_rle),
            (4, 2, 1, 1, 104., _uncompressed_rle(crowd)),
        ]
    ]
    data = dict(
        images=[
            dict(
                id=i,
                file_name=f'COCO_val2014_{i:012d}.jpg',
                height=h,
                width=w) for i in (1, 2, 3)
        ],
        annotations=anns,
        categories=[dict(id=c, name=str(c)) for c in COCO_IDS])
    os.makedirs(osp.join(root, 'annotations'))
    with open(osp.join(root, 'annotations/instances_val2014.json'), 'w') as f:
        json.dump(data, f)
    os.makedirs(osp.join(root, 'val2014'))
    for i in (1, 2, 3):
        Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(
            osp.join(root, f'val2014/COCO_val2014_{i:012d}.jpg'))
    return car, crowd


def test_coco2014(tmp_path, capsys):
    coco_root = str(tmp_path / 'coco')
    car, crowd = _write_coco(coco_root)
    out_dir = str(tmp_path / 'coco2014')
    conv = _module('coco2014')
    conv.main([coco_root, '--out', out_dir, '--splits', 'val'])
    assert 'val: 3 label maps, 2 images with tags' in capsys.readouterr().out
    seg = osp.join(out_dir, 'SegmentationClass/val2014')
    m1 = _png(osp.join(seg, 'COCO_val2014_000000000001.png'))
    # pycocotools rasterises polygon (0,0)-(20,15) to rows 0..15 x cols 0..20
    # (pixel centres inside, plus the boundary).
    assert m1[10, 10] == 1 and m1[6, 6] == 17  # dog (id 18) on the person
    assert m1[19, 29] == 0 and set(np.unique(m1)) == {0, 1, 17}
    m2 = _png(osp.join(seg, 'COCO_val2014_000000000002.png'))
    expected = np.where(crowd > 0, 1, 0)
    expected[car > 0] = 3
    np.testing.assert_array_equal(m2, expected)
    assert (_png(osp.join(seg, 'COCO_val2014_000000000003.png')) == 0).all()
    assert _lines(osp.join(out_dir, 'ImageSets/val.txt')) == [
        'COCO_val2014_000000000001', 'COCO_val2014_000000000002'
    ]
    assert _lines(osp.join(out_dir, 'ImageSets/val_cls.txt')) == [
        'COCO_val2014_000000000001 0 16', 'COCO_val2014_000000000002 0 2'
    ]
    assert osp.islink(osp.join(out_dir, 'images/val2014'))
    # The dataset reads the output through its tag file.
    ds = WSSSCOCODataset(
        data_root=out_dir,
        ann_file='ImageSets/val.txt',
        cls_label_file='ImageSets/val_cls.txt',
        data_prefix=dict(
            img_path='images/val2014',
            seg_map_path='SegmentationClass/val2014'),
        pipeline=[])
    assert [ds.get_data_info(i)['img_labels'] for i in range(2)] == [[0, 16],
                                                                     [0, 2]]
    # --crowd ignore, resumable: only the removed map is rewritten.
    os.remove(osp.join(seg, 'COCO_val2014_000000000002.png'))
    conv.main(
        [coco_root, '--out', out_dir, '--splits', 'val', '--crowd', 'ignore'])
    m2 = _png(osp.join(seg, 'COCO_val2014_000000000002.png'))
    assert (m2[crowd > 0] == 255).all() and (m2[car > 0] == 3).all()
    assert _lines(osp.join(out_dir, 'ImageSets/val_cls.txt'))[1] == \
        'COCO_val2014_000000000002 2'
