import importlib.util
import json
import os.path as osp

from tests.conftest import REPO


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
        'synthvoc_table.py', '--work-dir', str(tmp_path), '--methods', 'cam',
        '--seeds', '0', '1'
    ])
    mod.main()  # every run is done: no pipeline runs, only the table
    text = (tmp_path / 'table.md').read_text()
    # mean 42, sample std of (40, 44) = 2.83
    assert '| cam | 42.00 ± 2.83 | 43.00 ± 2.83 | 90.00 ± 0.00 |' in text
    assert (tmp_path / 'table.png').stat().st_size > 1000


def test_a_run_short_of_until_is_resumed_and_missing_columns_dashed(
        tmp_path, monkeypatch):
    mod = _module()
    partial = dict(_summary(50.0), seg_val_miou=None, seg_val_miou_crf=None)
    _write_runs(tmp_path, 'eps', [partial, partial])
    calls = []

    def fake_run(cmd, cwd, check):
        calls.append(cmd)
        work = cmd[cmd.index('--work-dir') + 1]
        done = dict(partial, seg_val_miou=60.0)
        with open(osp.join(work, 'summary.json'), 'w') as f:
            json.dump(done, f)

    monkeypatch.setattr(mod.subprocess, 'run', fake_run)
    argv = ['synthvoc_table.py', '--work-dir', str(tmp_path), '--methods',
            'eps', '--seeds', '0', '1']
    # --until pseudo: both runs have their pseudo labels, nothing runs
    monkeypatch.setattr('sys.argv', argv + ['--until', 'pseudo'])
    mod.main()
    assert calls == []
    text = (tmp_path / 'table.md').read_text()
    assert '| eps | 50.00 ± 0.00 | 51.00 ± 0.00 | 90.00 ± 0.00 | — | — |' \
        in text
    assert '- eps: 50.00, 50.00; —' in text
    # --until val: each run is resumed by its pipeline, up to val
    monkeypatch.setattr('sys.argv', argv + ['--until', 'val'])
    mod.main()
    assert len(calls) == 2
    assert calls[0][calls[0].index('--until') + 1] == 'val'
    assert calls[0][calls[0].index('--seed') + 1] == '0'
    text = (tmp_path / 'table.md').read_text()
    assert '| 60.00 ± 0.00 | — |' in text
    # A column that only some seeds reached says how many.
    (tmp_path / 'eps_seed1' / 'summary.json').write_text(json.dumps(partial))
    monkeypatch.setattr('sys.argv', argv + ['--until', 'pseudo'])
    mod.main()
    text = (tmp_path / 'table.md').read_text()
    assert '| 60.00 (n=1) | — |' in text


def test_paired_differences_per_seed(tmp_path, monkeypatch):
    mod = _module()
    _write_runs(tmp_path, 'eps', [_summary(v) for v in (50.0, 54.0, 52.0)])
    _write_runs(tmp_path, 'rca-eps',
                [_summary(v) for v in (53.0, 55.0, 56.0)])
    monkeypatch.setattr('sys.argv', [
        'synthvoc_table.py', '--work-dir', str(tmp_path), '--methods', 'eps',
        'rca-eps', '--until', 'pseudo'
    ])
    mod.main()
    text = (tmp_path / 'table.md').read_text()
    # differences 3, 1, 4: mean 2.67, sample std 1.53, all three positive
    assert ('| rca-eps − eps | +2.67 ± 1.53 (3/3 seeds > 0) | '
            '+2.67 ± 1.53 (3/3 seeds > 0) | +2.67 ± 1.53 (3/3 seeds > 0) |'
            ) in text
