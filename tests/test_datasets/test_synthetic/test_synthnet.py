"""SynthNet: the classes, one image, and the dataset on disk."""
import filecmp
import json
import os

import numpy as np
import pytest
from PIL import Image

from rca_mm.datasets.synthetic import synthnet
from rca_mm.datasets.synthetic.synthnet import (build_synthnet_world,
                                                generate_synthnet,
                                                render_synthnet_sample)
from rca_mm.datasets.synthetic.synthvoc_render import (BACKGROUNDS,
                                                       build_world, class_look)

SMALL = dict(
    num_classes=50,
    num_train_per_class=2,
    num_val_per_class=1,
    size=(48, 48),
    show_progress=False)


def test_synthvoc_classes_are_the_first_ten_with_their_exact_look():
    world = build_synthnet_world()
    voc = build_world(synthnet.NUM_SYNTHVOC)
    assert world.names[:synthnet.NUM_SYNTHVOC] == voc.names[1:]
    for c in range(synthnet.NUM_SYNTHVOC):
        mine, theirs = world.looks[c], class_look(voc, c)
        assert mine.part_shape == theirs.part_shape
        assert mine.body_style == theirs.body_style
        np.testing.assert_array_equal(mine.part_rgb, theirs.part_rgb)
        np.testing.assert_array_equal(mine.body_hsv, theirs.body_hsv)
    # The first three body colours are SynthVOC's, so a SynthVOC body drawn
    # for another class is the same body.
    np.testing.assert_array_equal(
        np.asarray(synthnet.BODY_HSV[:3], np.float32), voc.body_hsv)


def test_classes_differ_in_body_as_well_as_in_part():
    world = build_synthnet_world()
    assert len(world.names) == len(set(world.names)) == 100
    pairs = set(zip(world.parts.tolist(), world.bodies.tolist()))
    assert len(pairs) == 100  # no two classes look the same
    for c in range(synthnet.NUM_SYNTHVOC):
        # The SynthVOC part on other bodies, as other classes ...
        assert (world.parts == c).sum() >= 1 + synthnet.LOOKALIKES
        # ... and the SynthVOC body with other parts.
        body = world.bodies[c]
        assert (world.bodies == body).sum() >= 1 + synthnet.SIBLINGS
        same_part = world.bodies[world.parts == c]
        assert len(set(same_part.tolist())) == len(same_part)
    # Look-alikes differ from their SynthVOC class in texture and colour.
    for k in range(synthnet.NUM_SYNTHVOC, len(world.names)):
        p = int(world.parts[k])
        if p < synthnet.NUM_SYNTHVOC:
            assert world.looks[k].body_style != world.looks[p].body_style or \
                not np.array_equal(world.looks[k].body_hsv,
                                   world.looks[p].body_hsv)
    with pytest.raises(ValueError, match='num_classes must be in 50'):
        build_synthnet_world(49)


def test_one_large_centred_object_on_a_class_independent_background():
    world = build_synthnet_world()
    fracs, centres = [], []
    for i in range(30):
        s = render_synthnet_sample(world, i % 100,
                                   np.random.default_rng([3, i]))
        assert s['image'].shape == (112, 112, 3)
        assert s['image'].dtype == np.uint8
        ys, xs = np.nonzero(s['mask'])
        fracs.append(s['mask'].mean())
        centres.append((xs.mean() / 112, ys.mean() / 112))
    # The body is drawn at the area range; the part adds a little.
    assert synthnet.AREA_RANGE[0] * 0.8 < min(fracs)
    assert max(fracs) < synthnet.AREA_RANGE[1] * 1.25
    lo, hi = synthnet.CENTRE_RANGE
    assert all(lo - 0.2 < cx < hi + 0.2 and lo - 0.2 < cy < hi + 0.2
               for cx, cy in centres)
    # The background comes first from the generator and does not depend on
    # the class: the same seed gives every class the same background.
    for i in range(10):
        first = render_synthnet_sample(world, 0, np.random.default_rng(i))
        other = render_synthnet_sample(world, 77, np.random.default_rng(i))
        assert first['background'] == other['background']
        assert not np.array_equal(first['image'], other['image'])
    # Over many images every family appears for one class.
    seen = {
        render_synthnet_sample(world, 5,
                               np.random.default_rng([9, i]))['background']
        for i in range(40)
    }
    assert seen == set(BACKGROUNDS)


def test_layout_lists_and_labels(tmp_path):
    root = str(tmp_path / 'net')
    counts = generate_synthnet(root, **SMALL)
    assert counts == dict(train=100, val=50, num_classes=50)
    names = (tmp_path / 'net' / 'classes.txt').read_text().split()
    assert names == list(build_synthnet_world(50).names)
    for split, n in (('train', 100), ('val', 50)):
        lines = (tmp_path / 'net' / 'meta' /
                 f'{split}.txt').read_text().splitlines()
        assert len(lines) == n
        for line in lines:
            rel, label = line.split()
            assert rel.split('/')[0] == f'{int(label):03d}_{names[int(label)]}'
            img = Image.open(os.path.join(root, split, rel))
            assert img.mode == 'RGB' and img.size == (48, 48)
        assert sorted(int(x.split()[1])
                      for x in lines) == sorted(list(range(50)) * (n // 50))
    meta = json.loads((tmp_path / 'net' / 'synthnet.json').read_text())
    assert meta['complete'] and meta['counts'] == counts


def test_mmpretrain_custom_dataset_reads_it(tmp_path):
    from mmpretrain.datasets import CustomDataset
    root = str(tmp_path / 'net')
    generate_synthnet(root, **SMALL)
    ds = CustomDataset(
        data_root=root,
        data_prefix='val',
        ann_file='meta/val.txt',
        pipeline=[])
    assert len(ds) == 50
    info = ds.get_data_info(7)
    assert info['gt_label'] == 7
    assert os.path.isfile(info['img_path'])
    assert '/007_' in info['img_path']


def test_deterministic_across_nproc_and_rerun_and_refusals(tmp_path):
    one, two = str(tmp_path / 'one'), str(tmp_path / 'two')
    generate_synthnet(one, **SMALL)
    generate_synthnet(two, nproc=2, **SMALL)
    files = [
        os.path.relpath(os.path.join(d, f), one) for d, _, fs in os.walk(one)
        for f in fs
    ]
    same, differ, errors = filecmp.cmpfiles(one, two, files, shallow=False)
    assert not differ and not errors and len(same) == 100 + 50 + 4
    # A finished dataset is not rewritten; an interrupted one is redone.
    stamp = os.path.getmtime(os.path.join(one, 'meta', 'train.txt'))
    generate_synthnet(one, **SMALL)
    assert os.path.getmtime(os.path.join(one, 'meta', 'train.txt')) == stamp
    os.remove(os.path.join(one, 'meta', 'val.txt'))
    generate_synthnet(one, **SMALL)
    assert os.path.isfile(os.path.join(one, 'meta', 'val.txt'))
    with pytest.raises(ValueError, match=r'other arguments \(seed: 0 there'):
        generate_synthnet(one, **dict(SMALL, seed=1))
    stranger = tmp_path / 'stranger'
    stranger.mkdir()
    (stranger / 'x.txt').write_text('x')
    with pytest.raises(ValueError, match='no synthnet.json'):
        generate_synthnet(str(stranger), **SMALL)
    with pytest.raises(ValueError, match='num_train_per_class'):
        generate_synthnet(
            str(tmp_path / 'x'), **dict(SMALL, num_train_per_class=0))


def test_cli(tmp_path, capsys):
    from tests.conftest import run_tool
    out = run_tool([
        'python', 'tools/dataset_converters/synthnet.py', '--out',
        tmp_path / 'cli', '--num-classes', '50', '--num-train-per-class', '1',
        '--num-val-per-class', '0', '--size', '40', '40'
    ])
    assert 'SynthNet in' in out and '50 train, 0 val, 50 classes' in out
    rc, out = run_tool([
        'python', 'tools/dataset_converters/synthnet.py', '--out',
        tmp_path / 'bad', '--num-classes', '7'
    ],
                       check=False)
    assert rc != 0 and 'synthnet.py: error: num_classes must be in' in out
