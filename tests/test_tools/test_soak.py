"""tools/analysis_tools/soak.py: the ``--quick`` run's records
and the growth verdict. The long run's figures are in docs/reliability.md.
"""
import importlib.util
import json
import os.path as osp

import numpy as np
import pytest
from PIL import Image

from ..conftest import REPO, run_tool

SOAK = osp.join(REPO, 'tools', 'analysis_tools', 'soak.py')
NUM_CLASSES, FEAT_DIM, CAP = 10, 128, 2  # SynthVOC, ResNet-18 w16, --quick


def soak_module():
    spec = importlib.util.spec_from_file_location('soak', SOAK)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_quick_soak_records_a_bounded_bank_and_no_tensor_growth(tmp_path):
    out = tmp_path / 'soak.json'
    # Three fitted epochs of 0.5 s are too few for an RSS slope: CI once
    # measured +1.44 MiB/epoch from one allocator step. The RSS limit is
    # lifted here and the RSS only checked for consistency below; the long
    # run in docs/reliability.md holds the RSS limit.
    log = run_tool(['python', SOAK, '--quick', '--work-dir', tmp_path,
                    '--out', out, '--max-rss-slope', 'inf'],
                   env=dict(OMP_NUM_THREADS='1'))
    report = json.loads(out.read_text())
    records, verdict = report['records'], report['verdict']
    assert [r['epoch'] for r in records] == [1, 2, 3, 4]
    # The bank's size from the tags of the generated images, by hand:
    # min(cap, images tagged l) slots per class; per slot D float32
    # features, a bool and three int64; plus step, num_images, the L+1
    # class offsets and the int32 (L, images) lookup table.
    root = tmp_path / 'synthvoc'
    names = (root / 'ImageSets/Segmentation/train_aug.txt').read_text(
    ).split()
    assert len(names) == 8
    per_class = np.zeros(NUM_CLASSES, dtype=int)
    for name in names:
        label = np.asarray(
            Image.open(root / 'SegmentationClassAug' / f'{name}.png'))
        for value in set(np.unique(label).tolist()) - {0, 255}:
            per_class[value - 1] += 1
    slots = int(np.minimum(per_class, CAP).sum())
    assert slots < per_class.sum()  # the cap evicts
    nbytes = slots * (FEAT_DIM * 4 + 1 + 3 * 8) + 2 * 8 + \
        (NUM_CLASSES + 1) * 8 + NUM_CLASSES * len(names) * 4
    assert verdict['expected_slots'] == slots
    for r in records:
        assert r['bank_slots'] == slots and r['bank_nbytes'] == nbytes
        assert r['bank_written'] == slots  # gate 0: every slot is used
        assert r['rss_mib'] > 0 and r['tensor_mib'] > 0
    # No live tensor is added epoch over epoch once training runs (the
    # count is deterministic; the RSS is printed, not asserted).
    assert len({r['tensors'] for r in records[1:]}) == 1
    assert verdict['tensor_growth'] == 0 and verdict['checks']['tensors']
    assert verdict['fit_epochs'] == [2, 4]
    fit = records[1:]
    np.testing.assert_allclose(
        verdict['rss_slope_mib'],
        np.polyfit([r['epoch'] for r in fit], [r['rss_mib'] for r in fit],
                   1)[0], atol=1e-9)
    assert 'soak: rss' in log and 'tensors ok' in log


def fake_records(rss_step=0.0, tensor_step=0, nbytes_step=0, epochs=8):
    return [
        dict(epoch=e, rss_mib=500.0 + rss_step * e + 0.1 * (e % 2),
             tensors=200 + tensor_step * e, tensor_mib=5.0,
             bank_nbytes=1000 + nbytes_step * e, bank_slots=10,
             bank_written=10) for e in range(1, epochs + 1)
    ]


def test_verdict_flags_growth_and_a_changing_bank():
    soak = soak_module()
    kwargs = dict(skip=2, max_rss_slope=0.25, max_tensor_slope=0.5)
    flat = soak.verdict(fake_records(), 10, **kwargs)
    assert flat['ok'] and flat['fit_epochs'] == [3, 8]
    # Alternating +-0.1 MiB noise around a flat line: slope by hand.
    x = np.arange(3, 9)
    y = 0.1 * (x % 2)
    ref = ((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean())**2).sum()
    assert flat['rss_slope_mib'] == pytest.approx(ref)
    assert soak.slope([1, 2, 3], [1.0, 3.0, 5.0]) == pytest.approx(2.0)

    grows = soak.verdict(fake_records(rss_step=1.0), 10, **kwargs)
    assert not grows['ok'] and not grows['checks']['rss']
    assert grows['rss_growth_mib'] == pytest.approx(5.0 + 0.1 * (0 - 1))
    leaks = soak.verdict(fake_records(tensor_step=1), 10, **kwargs)
    assert not leaks['checks']['tensors'] and leaks['tensor_growth'] == 5
    resized = soak.verdict(fake_records(nbytes_step=8), 10, **kwargs)
    assert not resized['checks']['bank_constant']
    assert not soak.verdict(fake_records(), 9, **kwargs)['checks'][
        'bank_bounded']
    with pytest.raises(ValueError, match='fewer than 2'):
        soak.verdict(fake_records(epochs=3), 10, **kwargs)
