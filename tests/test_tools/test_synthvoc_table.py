import importlib.util
import json
import os
import os.path as osp

import pytest

from rca_mm.apis.pipeline import StepFailed, load_experiments
from tests.conftest import REPO

PRETRAIN = 'configs/pretrain/resnet18-w16-d8_6e_synthnet-96x96.py'
STAGE2 = 'configs/synthvoc/deeplabv2_r18-w16-d8_1k_synthvoc-112x112.py'


def _module():
    spec = importlib.util.spec_from_file_location(
        'synthvoc_table',
        osp.join(REPO, 'tools', 'analysis_tools', 'synthvoc_table.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _summary(v):
    return dict(
        pseudo_label_miou_full=v,
        pseudo_label_miou_confident=v + 1,
        pseudo_label_coverage=90.0,
        seg_val_miou=v + 2,
        seg_val_miou_crf=v + 3)


def _write_runs(root, method, summaries):
    """Finished runs ``<method>_seed<i>`` with the given summaries."""
    for seed, summary in enumerate(summaries):
        work = root / f'{method}_seed{seed}'
        work.mkdir()
        (work / 'summary.json').write_text(json.dumps(summary))


def test_table_reports_mean_and_sample_std(tmp_path, monkeypatch):
    mod = _module()
    _write_runs(tmp_path, 'cam', [_summary(v) for v in (40.0, 44.0)])
    monkeypatch.setattr('sys.argv', [
        'synthvoc_table.py', '--work-dir',
        str(tmp_path), '--methods', 'cam', '--seeds', '0', '1'
    ])
    mod.main()  # every run is done: no pipeline runs, only the table
    text = (tmp_path / 'main.md').read_text()
    # mean 42, sample std of (40, 44) = 2.83
    assert '| cam | 42.00 ± 2.83 | 43.00 ± 2.83 | 90.00 ± 0.00 |' in text
    assert (tmp_path / 'main.png').stat().st_size > 1000


def test_a_run_short_of_until_is_resumed_and_missing_columns_dashed(
        tmp_path, monkeypatch):
    mod = _module()
    partial = dict(_summary(50.0), seg_val_miou=None, seg_val_miou_crf=None)
    _write_runs(tmp_path, 'eps', [partial, partial])
    calls = []

    def fake_run(stage1, stage2, **kwargs):
        calls.append(dict(kwargs, stage1=stage1, stage2=stage2))
        work = kwargs['work_dir']
        done = dict(partial, seg_val_miou=60.0)
        with open(osp.join(work, 'summary.json'), 'w') as f:
            json.dump(done, f)

    monkeypatch.setattr(mod, 'run_pipeline', fake_run)
    argv = [
        'synthvoc_table.py', '--work-dir',
        str(tmp_path), '--methods', 'eps', '--seeds', '0', '1'
    ]
    # --until pseudo: both runs have their pseudo labels, nothing runs
    monkeypatch.setattr('sys.argv', argv + ['--until', 'pseudo'])
    mod.main()
    assert calls == []
    text = (tmp_path / 'main.md').read_text()
    assert '| eps | 50.00 ± 0.00 | 51.00 ± 0.00 | 90.00 ± 0.00 | — | — |' \
        in text
    assert '- eps: 50.00, 50.00; —' in text
    # --until val: each run is resumed by its pipeline, up to val
    monkeypatch.setattr('sys.argv', argv + ['--until', 'val'])
    mod.main()
    assert len(calls) == 2
    assert calls[0]['until'] == 'val'
    assert calls[0]['seed'] == 0
    text = (tmp_path / 'main.md').read_text()
    assert '| 60.00 ± 0.00 | — |' in text
    # A column that only some seeds reached says how many.
    (tmp_path / 'eps_seed1' / 'summary.json').write_text(json.dumps(partial))
    monkeypatch.setattr('sys.argv', argv + ['--until', 'pseudo'])
    mod.main()
    text = (tmp_path / 'main.md').read_text()
    assert '| 60.00 (n=1) | — |' in text


def test_paired_differences_per_seed(tmp_path, monkeypatch):
    mod = _module()
    _write_runs(tmp_path, 'eps', [_summary(v) for v in (50.0, 54.0, 52.0)])
    _write_runs(tmp_path, 'rca-eps', [_summary(v) for v in (53.0, 55.0, 56.0)])
    monkeypatch.setattr('sys.argv', [
        'synthvoc_table.py', '--work-dir',
        str(tmp_path), '--methods', 'eps', 'rca-eps', '--until', 'pseudo'
    ])
    mod.main()
    text = (tmp_path / 'main.md').read_text()
    # differences 3, 1, 4: mean 2.67, sample std 1.53, all three positive
    # in each paired column: pseudo (full, confident), seg val, + CRF
    assert ('| rca-eps − eps | +2.67 ± 1.53 (3/3 seeds > 0) | '
            '+2.67 ± 1.53 (3/3 seeds > 0) | +2.67 ± 1.53 (3/3 seeds > 0) | '
            '+2.67 ± 1.53 (3/3 seeds > 0) |') in text
    assert '| row − compared row | Δ pseudo mIoU (full) | ' \
        'Δ pseudo mIoU (confident) | Δ seg val mIoU | ' \
        'Δ seg val mIoU + CRF |\n| --- | --- | --- | --- | --- |' in text


def test_tables_pick_rows_configs_and_the_pretrained_start(
        tmp_path, monkeypatch):
    mod = _module()
    calls = []

    def fake_run(stage1, stage2, **kwargs):
        calls.append(dict(kwargs, stage1=stage1, stage2=stage2))
        work = kwargs['work_dir']
        os.makedirs(work, exist_ok=True)
        with open(osp.join(work, 'summary.json'), 'w') as f:
            json.dump(_summary(60.0), f)

    monkeypatch.setattr(mod, 'run_pipeline', fake_run)
    monkeypatch.setattr('sys.argv', [
        'synthvoc_table.py', '--work-dir',
        str(tmp_path), '--table', 'gamma', '--seeds', '0'
    ])
    mod.main()
    # Five rows, each one run to its pseudo labels from the pretrained
    # start, the ablations from their own configs.
    assert len(calls) == 5
    assert all(c['until'] == 'pseudo' for c in calls)
    assert all(c['pretrain_config'] == PRETRAIN for c in calls)
    assert all(c['stage2'] == STAGE2 for c in calls)
    configs = [c['stage1'] for c in calls]
    assert configs == [
        'configs/synthvoc/ablations/'
        f'rca-oaa_r18-w16_8e_synthvoc-112x112_{name}.py'
        for name in ('gamma0', 'gamma0.5', 'gamma0.9')
    ] + [
        'configs/synthvoc/rca-oaa_r18-w16_8e_synthvoc-112x112.py',
        'configs/synthvoc/ablations/'
        'rca-oaa_r18-w16_8e_synthvoc-112x112_gamma0.999.py'
    ]
    text = (tmp_path / 'gamma.md').read_text()
    assert '| rca-oaa-gamma0 − rca-oaa |' in text
    # --scratch: both stages from random weights, no pretraining.
    calls.clear()
    monkeypatch.setattr('sys.argv', [
        'synthvoc_table.py', '--work-dir',
        str(tmp_path / 'scratch'), '--methods', 'cam', '--seeds', '0',
        '--scratch'
    ])
    mod.main()
    (call, ) = calls
    assert call['pretrain_config'] is None
    assert call['work_dir'] == str(tmp_path / 'scratch' / 'cam_scratch_seed0')
    assert call['stage1_cfg_options'] == ['model.backbone.init_cfg=None']
    assert call['stage2_cfg_options'] == ['model.backbone.init_cfg=None']


def test_a_failing_step_stops_the_table_with_its_message(
        tmp_path, monkeypatch, capsys):
    mod = _module()

    def failing_run(stage1, stage2, **kwargs):
        raise StepFailed('step "stage1" failed (KeyError)')

    monkeypatch.setattr(mod, 'run_pipeline', failing_run)
    monkeypatch.setattr('sys.argv', [
        'synthvoc_table.py', '--work-dir',
        str(tmp_path), '--methods', 'cam', '--seeds', '0'
    ])
    with pytest.raises(SystemExit) as exit_:
        mod.main()
    assert exit_.value.code == 1
    assert '[table] stopped: step "stage1" failed (KeyError)' in \
        capsys.readouterr().err


def test_the_experiments_file_names_every_row_and_config():
    """Every row of every table is a run of the file, with a config."""
    experiments = load_experiments()
    assert experiments['pretrain'] == PRETRAIN
    assert experiments['stage2'] == STAGE2
    assert list(experiments['tables']) == [
        'main', 'table1', 'mixup', 'gamma', 'k', 'memory'
    ]
    assert experiments['tables']['main']['rows'] == [
        'cam', 'oaa', 'eps', 'rca-rsc', 'rca-rsa', 'rca', 'rca-oaa', 'rca-eps'
    ]
    for config in experiments['runs'].values():
        assert osp.isfile(osp.join(REPO, config)), config


def test_an_experiments_file_naming_an_unknown_run_is_refused(tmp_path):
    bad = tmp_path / 'experiments.yaml'
    bad.write_text(f"""
pretrain: {PRETRAIN}
stage2: {STAGE2}
runs: {{cam: configs/synthvoc/cam_r18-w16_8e_synthvoc-112x112.py}}
tables: {{main: {{rows: [cam, rca], until: pseudo, pairs: {{}}}}}}
""")
    with pytest.raises(
            ValueError, match=r"runs that `runs` does not have: "
            r"\['rca'\]"):
        load_experiments(str(bad))
