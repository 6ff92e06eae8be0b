"""tools/run_pipeline.py: steps chained by standard commands, resumable,
failing steps named with their log."""
import json

import pytest

from rca_mm.datasets.synthvoc import generate_synthvoc
from tests.conftest import run_tool

STAGE1 = 'configs/synthvoc/rca_r18-w16_8e_synthvoc-112x112.py'
STAGE2 = 'configs/synthvoc/deeplabv2_r18-w16-d8_1k_synthvoc-112x112.py'
FAST = [
    'train_cfg.max_epochs=2', 'train_cfg.val_interval=2',
    'train_dataloader.batch_size=8'
] + [
    f'{loader}.{key}'
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')
    for key in ('num_workers=0', 'persistent_workers=False')
]


@pytest.fixture(scope='module')
def tiny_synthvoc(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('synthvoc') / 'data')
    generate_synthvoc(root, num_train=16, num_val=4, num_train_subset=8,
                      show_progress=False)
    return root


def test_stage1_and_pseudo_labels_then_skip_on_rerun(tiny_synthvoc,
                                                     tmp_path):
    work = tmp_path / 'work'
    args = [
        'python', 'tools/run_pipeline.py', STAGE1, STAGE2, '--work-dir',
        work, '--data-root', tiny_synthvoc, '--until', 'pseudo',
        '--stage1-cfg-options'
    ] + FAST
    out = run_tool(args)
    assert 'tools/train.py ' + STAGE1 in out
    assert '--out ' + str(work / 'pseudo') in out
    summary = json.loads((work / 'summary.json').read_text())
    assert 0 <= summary['pseudo_label_miou_full'] <= 100
    assert summary['pseudo_label_coverage'] == 100.0  # threshold recipe
    assert summary['seg_val_miou'] is None  # stopped before stage 2
    assert len(list((work / 'pseudo' / 'pseudo_labels').iterdir())) == 16
    # The RCA checkpoint carries the bank and the prototypes.
    ckpt = (work / 'stage1' / 'last_checkpoint').read_text().strip()
    from rca_mm.utils.safe_checkpoint import safe_torch_load
    state = safe_torch_load(ckpt)['state_dict']
    assert 'head.memory_bank.feats' in state
    assert 'head.aggregation.prototypes' in state
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
    rc, out = run_tool([
        'python', 'tools/run_pipeline.py', STAGE1, STAGE2, '--work-dir',
        work, '--data-root', tiny_synthvoc, '--stage1-cfg-options',
        'model.head.gate_treshold=0.5'
    ], check=False)
    assert rc == 1
    assert 'step "stage1" failed' in out
    assert str(work / 'logs' / 'stage1.log') in out
    assert 'gate_treshold' in out


def test_last_checkpoint_follows_a_moved_work_dir(tmp_path):
    import importlib.util
    from tests.conftest import REPO
    spec = importlib.util.spec_from_file_location(
        'run_pipeline', f'{REPO}/tools/run_pipeline.py')
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    (tmp_path / 'epoch_8.pth').write_bytes(b'')
    (tmp_path / 'last_checkpoint').write_text('/gone/stage1/epoch_8.pth')
    assert mod.last_checkpoint(str(tmp_path)) == str(tmp_path / 'epoch_8.pth')
    (tmp_path / 'last_checkpoint').write_text('/gone/stage1/epoch_9.pth')
    assert mod.last_checkpoint(str(tmp_path)) == '/gone/stage1/epoch_9.pth'
    (tmp_path / 'last_checkpoint').unlink()
    with pytest.raises(mod.StepFailed, match='no last_checkpoint'):
        mod.last_checkpoint(str(tmp_path))
