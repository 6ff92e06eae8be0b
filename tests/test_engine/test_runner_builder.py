import pytest

from rca_mm.engine.runner_builder import load_config

CONFIG = 'configs/synthvoc/cam_r18-w16_8e_synthvoc-112x112.py'


def test_load_config_work_dir_cli_then_config_then_file_name(tmp_path):
    cfg = load_config(CONFIG)
    assert cfg.launcher == 'none'
    assert cfg.work_dir == './work_dirs/cam_r18-w16_8e_synthvoc-112x112'
    cfg = load_config(CONFIG, dict(work_dir='from_options'))
    assert cfg.work_dir == 'from_options'
    cfg = load_config(CONFIG, dict(work_dir='from_options'), str(tmp_path),
                      'pytorch')
    assert cfg.work_dir == str(tmp_path) and cfg.launcher == 'pytorch'


def test_load_config_merges_checked_options():
    cfg = load_config(CONFIG, {'train_cfg.max_epochs': 2})
    assert cfg.train_cfg.max_epochs == 2
    with pytest.raises(KeyError, match='max_epoch'):
        load_config(CONFIG, {'train_cfg.max_epoch': 2})


def test_cudnn_benchmark_only_for_training():
    # Test-time inputs change shape with every image and scale.
    assert load_config(CONFIG, training=True).env_cfg.cudnn_benchmark
    assert not load_config(CONFIG).env_cfg.cudnn_benchmark
