"""2-process CAM export: ``tools/dist_test.sh CONFIG CKPT 2
--out DIR`` on an odd number of images.

mmengine's DefaultSampler pads the 15 images to 16: rank 1's last image is
image 0 again. Every pseudo label must be written, image 0 twice (the same
file, each write atomic) and the others once, no temporary file may be
left, and the metrics must equal the 1-process export's: the gathered
results are cut to the dataset's length, so the repeat is not counted
twice. The export runs twice on 2 processes: as the processes come, and
with rank 0 held back until rank 1's padded repeat has written image 0,
the order that a loaded machine can give.
The model is the SynthVOC CAM classifier with seeded random weights (the
export does not depend on what the weights learnt).
"""
import collections
import json
import os
import os.path as osp
import textwrap

import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image

from rca_mm.registry import MODELS
from rca_mm.utils import register_all_modules
from ..conftest import REPO, run_dist_tool, run_tool, small_synthvoc

BASE = f'{REPO}/configs/synthvoc/cam_r18-w16_8e_synthvoc-112x112.py'
NUM_IMAGES = 15  # odd: the 2-process sampler pads one image

# Test-only: log every pseudo label the writer writes (one line per write,
# appended by each process), to count the writes of each pseudo label; with
# HOLD_RANK0_UNTIL set, rank 0 writes nothing before that file exists.
COUNT_WRITES = '''
import os
import time
from rca_mm.evaluation.metrics import pseudo_label_writer

_save_label_png = pseudo_label_writer.save_label_png


def logged_save_label_png(labels, path):
    _save_label_png(labels, path)
    with open(os.environ['WRITE_LOG'], 'a') as log:
        log.write(f'{os.getpid()} {path}\\n')


pseudo_label_writer.save_label_png = logged_save_label_png
_process = pseudo_label_writer.PseudoLabelWriter.process


def held_process(self, *args, **kwargs):
    hold = os.environ.get('HOLD_RANK0_UNTIL')
    if hold and os.environ.get('RANK') == '0':
        deadline = time.time() + 300
        while not os.path.exists(hold) and time.time() < deadline:
            time.sleep(0.05)
    return _process(self, *args, **kwargs)


pseudo_label_writer.PseudoLabelWriter.process = held_process
'''


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('dist_export')
    root = tmp / 'synthvoc'
    small_synthvoc(root, num_train=NUM_IMAGES, num_train_subset=7)
    (tmp / 'count_writes.py').write_text(COUNT_WRITES)
    cfg = tmp / 'export_cfg.py'
    cfg.write_text(
        textwrap.dedent(f'''
        _base_ = ['{BASE}']
        custom_imports = dict(imports=['count_writes'])
        model = dict(backbone=dict(init_cfg=None))
        test_dataloader = dict(
            batch_size=1, num_workers=0, persistent_workers=False,
            dataset=dict(data_root='{root}'))
        test_evaluator = dict(collect_dir='{tmp}/collect')
        val_dataloader = None
        val_cfg = None
        val_evaluator = None
        '''))
    # Seeded random weights, saved as a plain mmengine checkpoint.
    register_all_modules()
    torch.manual_seed(0)
    model = MODELS.build(
        Config.fromfile(str(cfg), import_custom_modules=False).model)
    model.init_weights()
    ckpt = tmp / 'cam.pth'
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), ckpt)
    return tmp, cfg, ckpt, root


def export(tmp, cfg, ckpt, name, nproc, hold_rank0_until=None):
    out = tmp / name
    log_file = tmp / f'{name}_writes.txt'
    args = [
        cfg, ckpt, '--out', out, '--work-dir', tmp / f'{name}_work',
        '--metrics-json', tmp / f'{name}.json'
    ]
    env = dict(
        PYTHONPATH=f'{tmp}:{REPO}',
        OMP_NUM_THREADS='1',
        WRITE_LOG=str(log_file))
    if hold_rank0_until:
        env['HOLD_RANK0_UNTIL'] = str(out / 'pseudo_labels' /
                                      f'{hold_rank0_until}.png')
    if nproc == 1:
        log = run_tool(['python', 'tools/test.py', *args], env=env)
    else:
        log = run_dist_tool(
            ['bash', 'tools/dist_test.sh', cfg, ckpt, nproc, *args[2:]],
            env=env)
    writes = [line.split() for line in log_file.read_text().splitlines()]
    metrics = json.loads((tmp / f'{name}.json').read_text())
    return out, log, writes, metrics


@pytest.fixture(scope='module')
def one_process(setup):
    tmp, cfg, ckpt, _ = setup
    return export(tmp, cfg, ckpt, 'one', 1)


@pytest.mark.parametrize('held', [False, True], ids=['free', 'held'])
def test_two_process_export_writes_every_label_and_scores_alike(
        setup, one_process, held):
    tmp, cfg, ckpt, root = setup
    order = (root / 'ImageSets/Segmentation/train_aug.txt').read_text().split()
    names = sorted(order)
    assert len(names) == NUM_IMAGES
    one_out, _, one_writes, one_metrics = one_process
    two_out, log, two_writes, two_metrics = export(
        tmp,
        cfg,
        ckpt,
        f'two_{held}',
        2,
        hold_rank0_until=order[0] if held else None)
    assert 'Distributed training: True' in log, log[-3000:]

    # Every image written, by two processes, image 0 by both (rank 1's
    # padded repeat), nothing else left under --out (no temporary .part
    # files).
    counts = collections.Counter(path for _, path in two_writes)
    assert sorted(counts) == [
        str(two_out / 'pseudo_labels' / f'{n}.png') for n in names
    ]
    first = str(two_out / 'pseudo_labels' / f'{order[0]}.png')
    assert counts.pop(first) == 2 and set(counts.values()) == {1}
    assert len({pid for pid, path in two_writes if path == first}) == 2
    assert sorted(path for _, path in one_writes) == [
        str(one_out / 'pseudo_labels' / f'{n}.png') for n in names
    ]
    for out in (one_out, two_out):
        files = sorted(
            os.path.relpath(os.path.join(d, f), out)
            for d, _, fs in os.walk(out) for f in fs)
        assert files == ['confusion_matrix.json'
                         ] + [f'pseudo_labels/{n}.png' for n in names]
    assert not (tmp / 'collect').exists()  # mmengine removed its parts
    if held:  # rank 1 (it labels image 1) wrote image 0 first: its repeat
        first_writer = next(pid for pid, path in two_writes if path == first)
        writer = {osp.basename(path): pid for pid, path in two_writes}
        assert first_writer == writer[f'{order[1]}.png']
    # The padded repeat is cut off before the summary, not counted twice.
    assert f'PseudoLabelMetric: {NUM_IMAGES} images, {NUM_IMAGES} ' \
        'labelled' in log
    assert 'PseudoLabelMetric: 7 images scored' in log

    # The same labels, hence the same metrics, as one process.
    for n in names:
        np.testing.assert_array_equal(
            np.asarray(Image.open(two_out / 'pseudo_labels' / f'{n}.png')),
            np.asarray(Image.open(one_out / 'pseudo_labels' / f'{n}.png')),
            err_msg=n)
    assert set(one_metrics) >= {'mIoU_full', 'mIoU_confident', 'coverage'}
    assert one_metrics['coverage'] > 0
    assert two_metrics == one_metrics
