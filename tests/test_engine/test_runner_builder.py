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


@pytest.mark.parametrize('accelerator', [False, True])
def test_pin_memory_only_with_an_accelerator(accelerator, monkeypatch):
    """The paper configs pin their training batches; without an
    accelerator the loaders are built unpinned, so torch does not warn at
    every epoch."""
    import warnings

    import torch
    from torch.utils.data import DataLoader

    from rca_mm.engine.runner_builder import pin_memory_only_with_accelerator
    monkeypatch.setattr(torch.accelerator, 'is_available', lambda: accelerator)
    cfg = load_config('configs/rca/rca_eps_r38_voc.py')
    assert cfg.train_dataloader.pin_memory is True
    pin_memory_only_with_accelerator(cfg)
    assert cfg.train_dataloader.pin_memory is accelerator
    assert not cfg.test_dataloader.get('pin_memory', False)
    if not accelerator:
        with warnings.catch_warnings():
            warnings.simplefilter('error')
            loader = DataLoader(
                list(range(4)),
                batch_size=2,
                pin_memory=cfg.train_dataloader.pin_memory)
            for _ in range(2):  # two epochs
                assert [len(b) for b in loader] == [2, 2]
