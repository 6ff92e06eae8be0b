"""A stage-1 config shrunk to a few tiny SynthVOC images, for real Runners.

Tests and reference scripts build an mmengine ``Runner`` from a repository
config (the model, the hooks and the schedule as users get them) and train
it for a couple of epochs on CPU in seconds: the data are redirected to a
tiny generated SynthVOC, the pipeline is the config's loading steps and
a plain resize (deterministic but for the model's own draws), the
backbone starts from scratch and the loaders run in the main process.
"""
from typing import Optional, Sequence

from mmengine.config import Config

from rca_mm.datasets.synthetic import generate_synthvoc


def write_tiny_synthvoc(root: str,
                        *,
                        num_train: int = 8,
                        num_val: int = 2,
                        size: int = 32) -> str:
    """Generate a tiny SynthVOC (seed 0) under ``root`` and return it."""
    generate_synthvoc(
        root,
        num_train=num_train,
        num_val=num_val,
        num_train_subset=min(4, num_train),
        size=(size, size),
        show_progress=False)
    return root


def tiny_stage1_cfg(config: str,
                    data_root: str,
                    work_dir: str,
                    *,
                    max_epochs: int = 2,
                    batch_size: int = 4,
                    size: int = 32,
                    val_interval: Optional[int] = None,
                    extra_hooks: Sequence[dict] = (),
                    name: Optional[str] = None) -> Config:
    """``config`` trained on ``data_root`` (from :func:`write_tiny_synthvoc`).

    Args:
        config (str): a stage-1 SynthVOC config file.
        data_root (str): the tiny dataset's root.
        work_dir (str): the runner's work directory.
        max_epochs (int): training epochs. Default: 2.
        batch_size (int): images per step. Default: 4.
        size (int): the square input size. Default: 32.
        val_interval (int, optional): validate every that many epochs (on
            the dataset's ``val`` images); None: no validation loop.
            Default: None.
        extra_hooks (Sequence[dict]): appended to ``custom_hooks``.
        name (str, optional): the runner's ``experiment_name`` (unique per
            runner of one process). Default: None (mmengine's timestamp).

    Returns:
        Config: the config, ready for ``Runner.from_cfg``.
    """
    cfg = Config.fromfile(config)
    loader = dict(
        batch_size=batch_size, num_workers=0, persistent_workers=False)
    # The config's loading steps (image, saliency where it has one), then
    # a plain resize.
    loads = [
        t for t in cfg.train_dataloader.dataset.pipeline
        if t['type'].startswith('Load')
    ]
    pipeline = loads + [
        dict(type='Resize', scale=(size, size), keep_ratio=False),
        dict(type='PackWSSSInputs'),
    ]
    cfg.merge_from_dict(
        dict(
            work_dir=work_dir,
            model=dict(
                data_preprocessor=dict(size=(size, size)),
                backbone=dict(init_cfg=None)),
            train_dataloader=dict(
                **loader, dataset=dict(data_root=data_root,
                                       pipeline=pipeline)),
            train_cfg=dict(
                max_epochs=max_epochs,
                val_interval=val_interval or max_epochs + 1),
            default_hooks=dict(logger=dict(interval=1)),
        ))
    if val_interval is None:
        cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    else:
        cfg.merge_from_dict(
            dict(
                val_dataloader=dict(
                    loader,
                    batch_size=1,
                    dataset=dict(
                        data_root=data_root,
                        pipeline=[
                            dict(type='LoadWSSSImageFromFile'),
                            dict(
                                type='Resize',
                                scale=(size, size),
                                keep_ratio=False),
                            dict(type='PackWSSSInputs'),
                        ]))))
    cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + list(extra_hooks)
    if name is not None:
        cfg.experiment_name = name
    return cfg
