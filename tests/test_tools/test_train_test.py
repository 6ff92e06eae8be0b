"""End-to-end runs of tools/train.py, tools/test.py and tools/dist_train.sh
on the smoke config and a tiny VOC-layout dataset."""
import json
import os
import os.path as osp
import re
import shutil

import pytest
import torch

from rca_mm.utils.workdir_lock import LOCK_NAME, WorkDirLock
from ..conftest import run_dist_tool, run_tool

CONFIG = 'configs/smoke/fcn_r18-w16_40i_vocsmoke-64x64.py'


def data_options(root):
    return [
        f'{split}_dataloader.dataset.data_root={root}'
        for split in ('train', 'val', 'test')
    ]


def train(work_dir, root, max_iters, *extra, ckpt_interval=2):
    return run_tool([
        'python', 'tools/train.py', CONFIG, '--work-dir', work_dir, *extra,
        '--cfg-options', *data_options(root),
        f'train_cfg.max_iters={max_iters}',
        f'train_cfg.val_interval={max_iters}',
        f'default_hooks.checkpoint.interval={ckpt_interval}',
        'default_hooks.checkpoint.max_keep_ckpts=10',
        'default_hooks.logger.interval=1'
    ])


def resume_fails(work_dir, root):
    """The log of ``tools/train.py --resume`` in ``work_dir``, which must
    exit non-zero."""
    code, log = run_tool([
        'python', 'tools/train.py', CONFIG, '--work-dir', work_dir, '--resume',
        '--cfg-options', *data_options(root)
    ],
                         check=False)
    assert code != 0
    return log


def written_miou(out, root, names, num_classes=21, ignore_index=255):
    """mmseg's mIoU (percent) of the PNG predictions in ``out`` against
    ``SegmentationClassAug``: the IoU of each class summed over the images,
    averaged over the classes present in a prediction or a label."""
    import numpy as np
    from PIL import Image
    inter = np.zeros(num_classes)
    union = np.zeros(num_classes)
    for name in names:
        pred = np.asarray(Image.open(out / f'{name}.png')).astype(np.int64)
        label = np.asarray(
            Image.open(osp.join(root, 'SegmentationClassAug',
                                name + '.png'))).astype(np.int64)
        keep = label != ignore_index
        pred, label = pred[keep], label[keep]
        area_pred = np.bincount(pred, minlength=num_classes)
        area_label = np.bincount(label, minlength=num_classes)
        both = np.bincount(pred[pred == label], minlength=num_classes)
        inter += both
        union += area_pred + area_label - both
    with np.errstate(invalid='ignore'):
        return float(np.nanmean(inter / union)) * 100


@pytest.fixture(scope='module')
def trained(tmp_path_factory, voc_root):
    work_dir = str(tmp_path_factory.mktemp('train'))
    log = train(work_dir, voc_root, 4)
    return work_dir, log


def test_train_writes_checkpoints_and_validates(trained):
    work_dir, log = trained
    for it in (2, 4):
        assert osp.isfile(osp.join(work_dir, f'iter_{it}.pth'))
    assert re.search(r'Iter\(val\).*mIoU: \d', log), log[-2000:]
    # mmseg modules by plain name, mmpretrain by prefix, rca_mm scope.
    assert "default_scope = 'rca_mm'" in log
    assert not osp.exists(osp.join(work_dir, LOCK_NAME))  # released


def test_train_into_a_held_work_dir_is_refused(voc_root, tmp_path):
    work_dir = tmp_path / 'held'
    with WorkDirLock(str(work_dir)):
        code, log = run_tool([
            'python', 'tools/train.py', CONFIG, '--work-dir', work_dir,
            '--cfg-options', *data_options(voc_root)
        ],
                             check=False)
        assert code != 0
        assert (f"WorkDirLockedError: the work dir (--work-dir) '{work_dir}' "
                'is in use by another run: pid '
                f'{os.getpid()} on host') in log, log[-3000:]
        assert os.listdir(work_dir) == [LOCK_NAME]  # nothing written


def test_dist_train_into_a_held_work_dir_is_refused(voc_root, tmp_path):
    """Rank 0 holds the lock for both ranks: refused, it ends the run
    (torchrun stops rank 1) instead of leaving rank 1 waiting."""
    work_dir = tmp_path / 'held_dist'
    with WorkDirLock(str(work_dir)):
        code, log = run_dist_tool([
            'bash', 'tools/dist_train.sh', CONFIG, 2, '--work-dir', work_dir,
            '--cfg-options', *data_options(voc_root)
        ],
                                  check=False,
                                  timeout=300)
    assert code != 0
    assert log.count('WorkDirLockedError: the work dir') == 1, log[-3000:]
    assert not list(work_dir.glob('*.pth'))


def test_resume_from_a_truncated_checkpoint_names_an_intact_one(
        trained, voc_root, tmp_path):
    work_dir, _ = trained
    resume_dir = tmp_path / 'truncated'
    resume_dir.mkdir()
    shutil.copy(osp.join(work_dir, 'iter_2.pth'), resume_dir)
    data = open(osp.join(work_dir, 'iter_4.pth'), 'rb').read()
    (resume_dir / 'iter_4.pth').write_bytes(data[:len(data) // 2])
    (resume_dir / 'last_checkpoint').write_text(str(resume_dir / 'iter_4.pth'))
    log = resume_fails(resume_dir, voc_root)
    assert (f"CorruptCheckpointError: checkpoint '{resume_dir}/iter_4.pth' "
            'is truncated or corrupt') in log, log[-3000:]
    assert f'--resume --cfg-options load_from={resume_dir}/iter_2.pth' in log


def test_test_tool_reports_miou_writes_and_draws_predictions(
        trained, voc_root, tmp_path):
    work_dir, _ = trained
    out, show = tmp_path / 'preds', tmp_path / 'show'
    log = run_tool([
        'python', 'tools/test.py', CONFIG,
        osp.join(work_dir, 'iter_4.pth'), '--work-dir', tmp_path / 'test',
        '--out', out, '--show-dir', show, '--cfg-options',
        *data_options(voc_root), 'default_hooks.visualization.interval=1'
    ])
    miou = re.search(r'Iter\(test\).*mIoU: ([\d.]+)', log)
    assert miou, log[-3000:]
    val_names = open(osp.join(
        voc_root, 'ImageSets/Segmentation/val.txt')).read().split()
    assert sorted(p.stem for p in out.glob('*.png')) == sorted(val_names)
    # The mIoU of the written predictions against the labels, and the
    # training's validation at iteration 4 (the same weights and images).
    assert float(miou.group(1)) == round(
        written_miou(out, voc_root, val_names), 2)
    val_miou = re.findall(r'Iter\(val\).*mIoU: ([\d.]+)', trained[1])
    assert val_miou == [miou.group(1)]
    # --show-dir: one drawn prediction per image, through the vis backend.
    drawn = sorted(p.name for p in show.glob('vis_data/vis_image/*.png'))
    assert drawn == sorted(f'test_{n}.jpg_0.png' for n in val_names)


def test_test_tool_tta_averages_scales_and_flips(voc_root, tmp_path):
    """--tta writes the argmax of the class probabilities averaged over
    every scale of ``tta_scales`` and both flips, each view's logits taken
    back to the image's size and orientation."""
    import numpy as np
    from mmengine.config import Config
    from mmseg.apis import init_model
    from PIL import Image

    from rca_mm.registry import TRANSFORMS

    # Trained long enough to predict more than one class, so that the
    # views change the prediction.
    train(tmp_path / 'train', voc_root, 40, ckpt_interval=40)
    ckpt = osp.join(tmp_path / 'train', 'iter_40.pth')
    out = tmp_path / 'tta_out'
    log = run_tool([
        'python', 'tools/test.py', CONFIG, ckpt, '--tta', '--out', out,
        '--work-dir', tmp_path / 'tta', '--cfg-options',
        *data_options(voc_root)
    ])
    assert re.search(r'Iter\(test\).*mIoU: [\d.]+', log), log[-2000:]

    cfg = Config.fromfile(CONFIG)
    model = init_model(cfg, ckpt, device='cpu')
    names = open(osp.join(voc_root,
                          'ImageSets/Segmentation/val.txt')).read().split()
    changed = 0
    for name in names:
        probs, single = 0, None
        for scale in cfg.tta_scales:
            for flip in (0.0, 1.0):
                view = [
                    TRANSFORMS.build(t) for t in
                    (dict(type='LoadImageFromFile'),
                     dict(type='Resize', scale_factor=scale, keep_ratio=True),
                     dict(
                         type='RandomFlip', prob=flip, direction='horizontal'),
                     dict(type='LoadAnnotations'), dict(type='PackSegInputs'))
                ]
                data = dict(
                    img_path=osp.join(voc_root, 'JPEGImages', name + '.jpg'),
                    seg_map_path=osp.join(voc_root, 'SegmentationClassAug',
                                          name + '.png'),
                    reduce_zero_label=False,
                    seg_fields=[])
                for t in view:
                    data = t(data)
                with torch.no_grad():
                    logits = model.test_step(dict(
                        inputs=[data['inputs']],
                        data_samples=[data['data_samples']]))[0] \
                        .seg_logits.data
                probs = probs + logits.softmax(dim=0)
                if scale == 1.0 and not flip:
                    single = logits.argmax(dim=0).numpy()
        expected = (probs / (2 * len(cfg.tta_scales))).argmax(dim=0).numpy()
        written = np.asarray(Image.open(out / f'{name}.png'))
        np.testing.assert_array_equal(written, expected, err_msg=name)
        changed += int((expected != single).sum())
    # The views matter for this model: a single-scale test would differ.
    assert changed > 0


def test_test_tool_tta_without_pipeline_names_the_key(trained, voc_root,
                                                      tmp_path):
    work_dir, _ = trained
    code, log = run_tool([
        'python', 'tools/test.py', CONFIG,
        osp.join(work_dir, 'iter_4.pth'), '--tta', '--work-dir', tmp_path /
        'tta', '--cfg-options', *data_options(voc_root), 'tta_pipeline=None'
    ],
                         check=False)
    assert code != 0
    assert '--tta needs `tta_pipeline` in the config' in log


def test_dist_test_gives_the_single_process_miou(trained, voc_root, tmp_path):
    work_dir, _ = trained
    ckpt = osp.join(work_dir, 'iter_4.pth')
    pattern = r'Iter\(test\).*mIoU: ([\d.]+)'
    single = run_tool([
        'python', 'tools/test.py', CONFIG, ckpt, '--work-dir',
        tmp_path / 'one', '--cfg-options', *data_options(voc_root)
    ])
    double = run_dist_tool([
        'bash', 'tools/dist_test.sh', CONFIG, ckpt, 2, '--work-dir',
        tmp_path / 'two', '--cfg-options', *data_options(voc_root)
    ])
    assert 'Distributed launcher: pytorch' in double
    assert re.search(pattern, double).group(1) == re.search(pattern,
                                                            single).group(1)


def test_resume_continues_from_the_last_checkpoint(trained, voc_root,
                                                   tmp_path):
    """Resume with torch.load's default weights_only=True (torch>=2.6)."""
    _, _ = trained
    work_dir = str(tmp_path / 'resume')
    train(work_dir, voc_root, 2)
    assert open(osp.join(
        work_dir, 'last_checkpoint')).read().strip().endswith('iter_2.pth')
    log = train(work_dir, voc_root, 4, '--resume')
    assert re.search(r'resumed epoch: 0, iter: 2', log), log[-3000:]
    assert 'Iter(train) [3/4]' in log and 'Iter(train) [1/4]' not in log
    ckpt = torch.load(osp.join(work_dir, 'iter_4.pth'))  # weights_only=True
    assert ckpt['meta']['iter'] == 4


def test_resume_refuses_a_checkpoint_with_a_pickled_callable(
        voc_root, tmp_path):
    from ..test_utils.test_safe_checkpoint import _CreatesFile
    work_dir, marker = tmp_path / 'evil', tmp_path / 'pwned'
    work_dir.mkdir()
    torch.save({
        'state_dict': {},
        'payload': _CreatesFile(marker)
    }, work_dir / 'iter_2.pth')
    (work_dir / 'last_checkpoint').write_text(str(work_dir / 'iter_2.pth'))
    log = resume_fails(work_dir, voc_root)
    assert 'UnsafeCheckpointError: Refused to load checkpoint' in log
    assert 'iter_2.pth' in log and 'posix.system' in log
    assert not marker.exists()


def test_run_dist_tool_retries_when_the_port_was_taken(tmp_path):
    """free_port() is check-then-use: another process may bind the port
    before torchrun does; the launcher run is started again on a new one."""
    script = tmp_path / 'launcher.py'
    script.write_text(
        'import os, sys\n'
        f'log = open({str(tmp_path / "ports")!r}, "a")\n'
        'log.write(os.environ["PORT"] + "\\n")\n'
        'log.close()\n'
        f'if len(open({str(tmp_path / "ports")!r}).readlines()) < 3:\n'
        '    sys.exit("EADDRINUSE: address already in use")\n')
    run_dist_tool(['python', script])
    ports = (tmp_path / 'ports').read_text().split()
    assert len(ports) == 3
    code, _ = run_dist_tool(['python', '-c', 'raise SystemExit(2)'],
                            check=False)
    assert code == 2  # a failure of another kind is returned as it is


def test_dist_train_runs_two_cpu_processes(voc_root, tmp_path):
    work_dir = tmp_path / 'dist'
    log = run_dist_tool([
        'bash', 'tools/dist_train.sh', CONFIG, 2, '--work-dir', work_dir,
        '--cfg-options', *data_options(voc_root), 'train_cfg.max_iters=2',
        'train_cfg.val_interval=2', 'default_hooks.logger.interval=1'
    ])
    assert re.search(r'Distributed training: True', log), log[-3000:]
    assert re.search(r'world_size: 2', log) or 'GPU number: 2' in log
    assert osp.isfile(work_dir / 'iter_2.pth')
    vis = list(work_dir.glob('*/vis_data/scalars.json'))
    assert vis, 'rank 0 writes the scalar log'
    last = json.loads(vis[0].read_text().splitlines()[-1])
    # The 2-process validation scores the whole val set: the mIoU of one
    # process testing the same checkpoint.
    single = run_tool([
        'python', 'tools/test.py', CONFIG, work_dir / 'iter_2.pth',
        '--work-dir', tmp_path / 'one', '--cfg-options',
        *data_options(voc_root)
    ])
    miou = re.search(r'Iter\(test\).*mIoU: ([\d.]+)', single).group(1)
    assert last['mIoU'] == float(miou)
