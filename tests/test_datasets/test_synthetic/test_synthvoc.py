import filecmp
import importlib.util
import json
import os
import os.path as osp

import numpy as np
import pytest
from PIL import Image

from rca_mm.datasets.metainfo import SYNTHVOC_CLASSES
from rca_mm.datasets.synthetic import generate_synthvoc
from rca_mm.datasets.synthetic.synthvoc_render import build_world
from rca_mm.fileio import voc_palette
from tests.conftest import REPO, run_tool

SMALL = dict(num_train=32, num_val=8, num_train_subset=12, size=(64, 64))
C = 10


def _files(root):
    out = []
    for d, _, names in os.walk(root):
        out += [osp.relpath(osp.join(d, n), root) for n in names]
    return sorted(out)


def _read_list(root, split):
    with open(osp.join(root, 'ImageSets', 'Segmentation',
                       split + '.txt')) as f:
        return f.read().split()


@pytest.fixture(scope='module')
def synthvoc(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('synth') / 'synthvoc')
    counts = generate_synthvoc(root, seed=0, show_progress=False, **SMALL)
    return root, counts


def test_layout_and_counts(synthvoc):
    root, counts = synthvoc
    assert counts == dict(train_aug=32, train=12, val=8, num_classes=C)
    train_aug, train, val = (
        _read_list(root, s) for s in ('train_aug', 'train', 'val'))
    assert len(train_aug) == 32 and len(train) == 12 and len(val) == 8
    assert set(train) <= set(train_aug)
    assert not set(val) & set(train_aug)
    assert train_aug[0] == '2026_000000' and val[-1] == '2026_000039'
    with open(osp.join(root, 'classes.txt')) as f:
        assert tuple(f.read().split()) == SYNTHVOC_CLASSES
    for name in train_aug + val:
        img = Image.open(osp.join(root, 'JPEGImages', name + '.jpg'))
        seg = Image.open(osp.join(root, 'SegmentationClassAug', name + '.png'))
        sal = Image.open(osp.join(root, 'SaliencyMaps', name + '.png'))
        assert (img.format, img.mode, img.size) == ('JPEG', 'RGB', (64, 64))
        assert (seg.mode, sal.mode) == ('P', 'L')
        assert seg.size == sal.size == (64, 64)
        assert np.array_equal(
            np.array(seg.getpalette()).reshape(-1, 3)[:256], voc_palette())
    meta = json.load(open(osp.join(root, 'synthvoc.json')))
    assert meta['complete'] and meta['counts'] == counts
    assert meta['args']['size'] == [64, 64]
    # No temporary files are left behind.
    assert not [f for f in _files(root) if '.tmp' in f]


def _labels(root):
    names = _read_list(root, 'train_aug') + _read_list(root, 'val')
    return {
        n: np.array(
            Image.open(osp.join(root, 'SegmentationClassAug', n + '.png')))
        for n in names
    }


def test_masks_tags_and_classes(synthvoc):
    root, _ = synthvoc
    seen = set()
    per_class_images = np.zeros(C + 1, int)
    for name, label in _labels(root).items():
        values = set(np.unique(label).tolist())
        assert values <= set(range(C + 1)) | {255}, name
        tags = values - {0, 255}
        assert tags, f'{name} has no foreground class'
        seen |= tags
        per_class_images[list(tags)] += 1
        # A thin ignore border separates every object from its neighbours.
        assert 0 < (label == 255).mean() < 0.2
    assert seen == set(range(1, C + 1))
    meta = json.load(open(osp.join(root, 'synthvoc.json')))
    train_counts = np.zeros(C + 1, int)
    for name, label in list(_labels(root).items())[:32]:
        train_counts[list(set(np.unique(label).tolist()) - {0, 255})] += 1
    assert list(meta['train_aug_images_per_class'].values()) == \
        train_counts[1:].tolist()


def test_saliency_correlates_with_objects(synthvoc):
    root, _ = synthvoc
    ious = []
    for name, label in _labels(root).items():
        sal = np.array(
            Image.open(osp.join(root, 'SaliencyMaps', name + '.png')))
        valid = label != 255
        fg, salient = (label > 0) & valid, (sal > 127) & valid
        ious.append((fg & salient).sum() / max((fg | salient).sum(), 1))
    assert 0.5 < np.mean(ious) < 0.95
    assert min(ious) < 0.9  # not a copy of the masks


def test_deterministic_for_a_seed_and_different_across_seeds(
        synthvoc, tmp_path):
    root, _ = synthvoc
    same = str(tmp_path / 'same')
    generate_synthvoc(same, seed=0, nproc=2, show_progress=False, **SMALL)
    files = _files(root)
    assert files == _files(same)
    match, mismatch, errors = filecmp.cmpfiles(
        root, same, files, shallow=False)
    assert not mismatch and not errors
    other = str(tmp_path / 'other')
    generate_synthvoc(other, seed=1, show_progress=False, **SMALL)
    images = [f for f in files if f.startswith('JPEGImages')]
    _, differ, _ = filecmp.cmpfiles(root, other, images, shallow=False)
    assert len(differ) == len(images)


def test_rerun_is_a_noop_and_interrupted_runs_are_redone(tmp_path):
    root = str(tmp_path / 'd')
    args = dict(num_train=4, num_val=2, num_train_subset=2, size=(48, 48))
    generate_synthvoc(root, show_progress=False, **args)
    jpg = osp.join(root, 'JPEGImages', '2026_000000.jpg')
    stamp = os.stat(jpg).st_mtime_ns
    assert generate_synthvoc(root, show_progress=False, **args)['val'] == 2
    assert os.stat(jpg).st_mtime_ns == stamp
    # An interrupted run has no lists yet: the next run writes them again.
    os.remove(osp.join(root, 'ImageSets', 'Segmentation', 'val.txt'))
    generate_synthvoc(root, show_progress=False, **args)
    assert _read_list(root, 'val') == ['2026_000004', '2026_000005']


def test_conflicting_rerun_and_bad_arguments(tmp_path):
    root = str(tmp_path / 'd')
    args = dict(num_train=4, num_val=2, num_train_subset=2, size=(48, 48))
    generate_synthvoc(root, show_progress=False, **args)
    with pytest.raises(ValueError, match=r'other arguments \(seed: 0 there'):
        generate_synthvoc(root, seed=3, show_progress=False, **args)
    stranger = tmp_path / 'stranger'
    stranger.mkdir()
    (stranger / 'notes.txt').write_text('mine')
    with pytest.raises(ValueError, match='no synthvoc.json'):
        generate_synthvoc(str(stranger), show_progress=False, **args)
    with pytest.raises(ValueError, match='num_train_subset'):
        generate_synthvoc(str(tmp_path / 'x'), num_train=4, num_train_subset=5)
    with pytest.raises(ValueError, match='num_classes'):
        build_world(0)
    # The CLI reports the conflict in one line, not a traceback.
    spec = importlib.util.spec_from_file_location(
        'synthvoc_cli', osp.join(REPO, 'tools/dataset_converters/synthvoc.py'))
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    with pytest.raises(SystemExit, match='synthvoc.py: error: .*seed'):
        cli.main([
            '--out', root, '--seed', '2', '--num-train', '4', '--num-val', '2',
            '--num-train-subset', '2', '--size', '48', '48'
        ])


def test_cli_writes_a_dataset(tmp_path):
    out = run_tool([
        'python', 'tools/dataset_converters/synthvoc.py', '--out',
        tmp_path / 'cli', '--num-train', '6', '--num-val', '2',
        '--num-train-subset', '3', '--size', '40', '56', '--num-classes', '12'
    ])
    assert '6 train_aug (3 in train), 2 val, 12 classes' in out
    with open(tmp_path / 'cli' / 'classes.txt') as f:
        names = f.read().split()
    assert names[0] == 'background' and names[1:3] == ['class01', 'class02']
    assert len(names) == 13
    img = Image.open(tmp_path / 'cli' / 'JPEGImages' / '2026_000007.jpg')
    assert img.size == (56, 40)


def test_relative_out_dir(tmp_path, monkeypatch):
    """``--out data/synthvoc`` (relative) puts the lists under it."""
    monkeypatch.chdir(tmp_path)
    generate_synthvoc(
        'data/rel',
        num_train=3,
        num_val=1,
        num_train_subset=2,
        size=(32, 32),
        show_progress=False)
    lists = tmp_path / 'data' / 'rel' / 'ImageSets' / 'Segmentation'
    assert sorted(p.name for p in lists.iterdir()) == [
        'train.txt', 'train_aug.txt', 'val.txt'
    ]
    assert not (tmp_path / 'data' / 'rel' / 'data').exists()
