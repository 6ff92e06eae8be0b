"""demo/image_demo.py on a tiny checkpoint: tags printed, files written."""
import os.path as osp
import runpy

import numpy as np
import pytest
from PIL import Image

from rca_mm.fileio import read_label_png
from tests.conftest import REPO, run_tool
from .conftest import RCA_EPS


def test_demo_writes_cams_label_and_panels(rca_eps_ckpt, images, tmp_path,
                                           capsys):
    _, ckpt = rca_eps_ckpt
    out = str(tmp_path / 'out')
    log = run_tool([
        'python', 'demo/image_demo.py', images[0], RCA_EPS, ckpt, '--out-dir',
        out, '--cfg-options', 'model.backbone.init_cfg=None'
    ])
    line = next(ln for ln in log.splitlines() if ln.startswith('img0: '))
    assert 'tags (score > 0.5): ' in line
    with np.load(osp.join(out, 'cams', 'img0.npz')) as npz:
        names = [str(npz['classes'][i - 1]) for i in npz['class_ids']]
        scores = npz['scores']
        assert npz['cams'].shape == (len(names), 40, 48)
        assert npz['cams_p'].shape == npz['cams'].shape
        assert npz['bg'].shape == (40, 48)
        np.testing.assert_array_equal(npz['class_ids'],
                                      np.flatnonzero(scores > 0.5) + 1)
    assert line == 'img0: tags (score > 0.5): ' + ', '.join(
        f'{n} {scores[i - 1]:.2f}'
        for n, i in zip(names,
                        np.flatnonzero(scores > 0.5) + 1))
    label = read_label_png(osp.join(out, 'pseudo_labels', 'img0.png'))
    assert label.shape == (40, 48)
    vis = np.asarray(Image.open(osp.join(out, 'vis', 'img0.png')))
    assert vis.shape[1] == (len(names) + 3) * 48

    # Given tags (in this process: the same main()), and an unknown one.
    demo = runpy.run_path(osp.join(REPO, 'demo', 'image_demo.py'))
    demo['main']([
        images[0], RCA_EPS, ckpt, '--out-dir', out, '--tags', 'cat',
        '--cfg-options', 'model.backbone.init_cfg=None'
    ])
    assert 'img0: tags (given): cat ' in capsys.readouterr().out
    with pytest.raises(ValueError, match="'kitten' is not a class"):
        demo['main']([
            images[0], RCA_EPS, ckpt, '--tags', 'kitten', '--cfg-options',
            'model.backbone.init_cfg=None'
        ])
