"""tools/run_pipeline.py: the steps in one process, each printed as its
standard command, resumable, failing steps named with their log."""
import json

import pytest

from rca_mm.datasets.synthetic import generate_synthvoc
from tests.conftest import PINNED_KERNELS, SERIAL_LOADERS, run_tool

STAGE1 = 'configs/synthvoc/rca_r18-w16_8e_synthvoc-112x112.py'
BASELINE = 'configs/synthvoc/cam_r18-w16_8e_synthvoc-112x112.py'
STAGE2 = 'configs/synthvoc/deeplabv2_r18-w16-d8_1k_synthvoc-112x112.py'
PRETRAIN = 'configs/pretrain/resnet18-w16-d8_6e_synthnet-96x96.py'
FAST = [
    'train_cfg.max_epochs=2', 'train_cfg.val_interval=2',
    'train_dataloader.batch_size=8'
] + SERIAL_LOADERS
SCRATCH = ['model.backbone.init_cfg=None']
# Pseudo-label mIoU (full) of the runs below, measured with the kernels
# pinned (tests.conftest.PINNED_KERNELS); the same when every step ran as
# a process of its own.
MIOU = dict(rca=10.5, cam_seed3=11.18, rca_seed3=10.66)


@pytest.fixture(scope='module')
def tiny_synthvoc(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('synthvoc') / 'data')
    generate_synthvoc(
        root, num_train=16, num_val=4, num_train_subset=8, show_progress=False)
    return root


def test_stage1_and_pseudo_labels_then_skip_on_rerun(tiny_synthvoc, tmp_path):
    work = tmp_path / 'work'
    args = [
        'python', 'tools/run_pipeline.py', STAGE1, STAGE2, '--work-dir', work,
        '--data-root', tiny_synthvoc, '--until', 'pseudo',
        '--stage1-cfg-options'
    ] + FAST + SCRATCH
    out = run_tool(args, env=PINNED_KERNELS)
    assert 'tools/train.py ' + STAGE1 in out
    assert '--out ' + str(work / 'pseudo') in out
    summary = json.loads((work / 'summary.json').read_text())
    assert summary['pseudo_label_miou_full'] == MIOU['rca']
    assert summary['pseudo_label_miou_confident'] == MIOU['rca']
    assert summary['pseudo_label_coverage'] == 100.0  # threshold recipe
    assert summary['seg_val_miou'] is None  # stopped before stage 2
    # The machine the numbers were made on (exact only on one machine).
    assert summary['machine']['cpu_count'] >= 1
    assert summary['machine']['torch_threads'] >= 1
    assert summary['machine']['cpu_capability']
    assert len(list((work / 'pseudo' / 'pseudo_labels').iterdir())) == 16
    # Two Runners in one process, each with its own logger: mmengine's log
    # of each step in its own work dir, with its own loop only.
    (stage1_log, ) = (work / 'stage1').glob('*/*.log')
    (pseudo_log, ) = (work / 'pseudo').glob('*/*.log')
    assert 'Epoch(train)' in stage1_log.read_text()
    assert 'Epoch(test)' not in stage1_log.read_text()
    assert 'Epoch(test)' in pseudo_log.read_text()
    assert 'Epoch(train)' not in pseudo_log.read_text()
    assert 'Epoch(train)' in (work / 'logs' / 'stage1.log').read_text()
    assert 'Epoch(test)' in (work / 'logs' / 'pseudo.log').read_text()
    # The RCA checkpoint carries the bank and the prototypes.
    ckpt = (work / 'stage1' / 'last_checkpoint').read_text().strip()
    from rca_mm.utils.safe_checkpoint import safe_torch_load
    state = safe_torch_load(ckpt)['state_dict']
    assert 'head.memory_bank.feats' in state
    assert 'head.aggregation.prototypes' in state
    # The release: the stage-1 model (bank emptied, no RNG states), the
    # logs of its steps and the summary.
    manifest = json.loads((work / 'release' / 'manifest.json').read_text())
    assert list(manifest['models']) == ['stage1']
    released = safe_torch_load(
        str(work / 'release' / manifest['models']['stage1']['file']))
    assert released['state_dict']['head.memory_bank.feats'].shape[0] == 0
    assert 'rng_state' not in released['meta']
    assert manifest['logs'] == ['logs/stage1.log', 'logs/pseudo.log']
    assert manifest['summary'] == 'summary.json'
    # Re-running skips every finished step.
    again = run_tool(args)
    assert 'stage1: done before, skipped' in again
    assert 'pseudo: done before, skipped' in again
    # A moved work dir resumes; an earlier --until keeps later numbers.
    moved = tmp_path / 'moved'
    work.rename(moved)
    until = args.index('--until') + 1
    out = run_tool(args[:5] + [moved] + args[6:until] + ['stage1'] +
                   args[until + 1:])
    assert 'stage1: done before, skipped' in out
    resumed = json.loads((moved / 'summary.json').read_text())
    assert resumed['pseudo_label_miou_full'] == \
        summary['pseudo_label_miou_full']
    assert set(resumed['step_seconds']) == {'stage1', 'pseudo'}


def test_a_failing_step_is_named_with_its_log(tiny_synthvoc, tmp_path):
    work = tmp_path / 'work'
    rc, out = run_tool(
        [
            'python', 'tools/run_pipeline.py', STAGE1, STAGE2, '--work-dir',
            work, '--data-root', tiny_synthvoc, '--stage1-cfg-options',
            'model.head.gate_treshold=0.5'
        ] + SCRATCH,
        check=False)
    assert rc == 1
    assert 'step "stage1" failed (KeyError)' in out
    assert str(work / 'logs' / 'stage1.log') in out
    assert 'gate_treshold' in out


def test_pretraining_once_then_reused_and_a_baseline_beside(
        tiny_synthvoc, tmp_path):
    """--pretrain makes the file the stage configs start from, the stages
    load it, a re-run reuses it, a lost file is exported again from the
    finished pretraining; --baseline runs beside on the same seed."""
    from rca_mm.datasets.synthetic import generate_synthnet
    from rca_mm.utils.safe_checkpoint import safe_torch_load
    net = str(tmp_path / 'synthnet')
    generate_synthnet(
        net,
        num_classes=50,
        num_train_per_class=1,
        num_val_per_class=1,
        size=(48, 48),
        show_progress=False)
    weights = tmp_path / 'pretrained' / 'w.pth'
    work = tmp_path / 'work'
    start = [f'model.backbone.init_cfg.checkpoint={weights}']
    args = [
        'python', 'tools/run_pipeline.py', STAGE1, STAGE2, '--work-dir', work,
        '--data-root', tiny_synthvoc, '--until', 'pseudo', '--seed', '3',
        '--pretrain', PRETRAIN, '--pretrain-work-dir', tmp_path / 'pre',
        '--pretrain-cfg-options', f'train_dataloader.dataset.data_root={net}',
        'train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
        'train_dataloader.batch_size=25', 'model.head.num_classes=50',
        'model.data_preprocessor.num_classes=50'
    ] + SERIAL_LOADERS + [
        '--baseline', BASELINE, '--baseline-until', 'pseudo',
        '--stage1-cfg-options'
    ] + FAST + start + ['--stage2-cfg-options'] + start
    out = run_tool(args, env=PINNED_KERNELS)
    assert 'tools/train.py ' + PRETRAIN in out
    assert 'publish_model.py --no-sha' in out
    # The terminal shows each step's progress.
    assert '[pipeline]   pretrain | Epoch(train) [1]' in out
    assert '[pipeline]   pretrain_val | Epoch(test)' in out
    pre = safe_torch_load(str(weights))['state_dict']
    summary = json.loads((work / 'summary.json').read_text())
    assert summary['pretrain']['reused'] is False
    # 2 of the 50 val images: one image is 2 points.
    assert summary['pretrain']['top1'] == 4.0
    assert set(summary['pretrain']['step_seconds']) == {
        'pretrain', 'pretrain_val', 'pretrain_export'
    }
    # Both classifiers started from the file, strictly.
    assert any(k.startswith('backbone.') for k in pre)
    for log in (work / 'logs' / 'stage1.log',
                work / 'baseline' / 'logs' / 'stage1.log'):
        assert f"StrictResNet: loaded 120 tensors of '{weights}' strictly" \
            in log.read_text()
    # The baseline, on the same seed, beside it.
    base = summary['baseline']
    assert base['stage1_config'] == BASELINE and base['seed'] == 3
    assert base['pseudo_label_miou_full'] == MIOU['cam_seed3']
    assert summary['pseudo_label_miou_full'] == MIOU['rca_seed3']
    assert base['seg_val_miou'] is None
    assert set(base['step_seconds']) == {'stage1', 'pseudo'}
    assert (work / 'baseline' / 'pseudo' / 'pseudo_labels').is_dir()
    assert base['until'] == 'pseudo'
    assert 'pseudo-label mIoU (full)' in out and 'difference' in out
    assert ('(cam stopped after its pseudo step: --baseline-until val_crf '
            'runs the rest)') in out
    # A re-run reuses the file and every finished step.
    again = run_tool(args)
    assert f'pretrained weights {weights} exist: reused' in again
    assert 'tools/train.py ' + PRETRAIN not in again
    assert json.loads(
        (work / 'summary.json').read_text())['pretrain']['reused'] is True
    # A lost file is exported again; the finished pretraining is not redone.
    weights.unlink()
    third = run_tool(args)
    assert 'pretrain: done before, skipped' in third
    assert 'publish_model.py --no-sha' in third
    for key, value in safe_torch_load(str(weights))['state_dict'].items():
        assert (value == pre[key]).all()
