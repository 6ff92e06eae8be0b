"""Set-ups shared by the tool tests that train on SynthVOC."""
import textwrap

import pytest
import torch

from ..conftest import REPO, small_synthvoc
from .test_draw_rca_figures import RCA, random_checkpoint

RCA_SYNTHVOC = f'{REPO}/configs/synthvoc/rca_r18-w16_8e_synthvoc-112x112.py'


def train_py_with_hook(hook_source: str, hook_class: str) -> str:
    """The source of a script that runs ``tools/train.py`` (its first
    argument, the rest being the tool's) with the hook ``hook_class``,
    defined in ``hook_source``, registered on the runner."""
    return hook_source + textwrap.dedent(f'''

        import runpy
        import sys

        from mmengine.runner import Runner

        _train = Runner.train


        def train(self):
            self.register_hook({hook_class}())
            return _train(self)


        Runner.train = train
        sys.argv = sys.argv[1:]
        runpy.run_path(sys.argv[0], run_name='__main__')
        ''')


def train_args_on(root, config, work_dir, *extra, options=()):
    """The arguments of ``tools/train.py`` that train ``config`` in
    ``work_dir`` on the SynthVOC at ``root``: the tool's ``extra``
    arguments, then ``options`` after the data root, no validation and a
    log line every iteration (``--cfg-options``)."""
    return [
        'tools/train.py',
        config,
        '--work-dir',
        str(work_dir),
        *extra,
        '--cfg-options',
        f'train_dataloader.dataset.data_root={root}',
        # The val loop is built (not run) at the start of training: point it
        # at the test's data too, not at the repository's data/.
        f'val_dataloader.dataset.data_root={root}',
        'val_dataloader.num_workers=0',
        'val_dataloader.persistent_workers=False',
        'train_cfg.val_interval=100',
        'default_hooks.logger.interval=1',
        *options,
    ]


def two_process_rca_config(tmp,
                           name: str,
                           hook_module: str,
                           hook_source: str,
                           hook_class: str,
                           extra: str = ''):
    """Write what a 2-process RCA training on SynthVOC needs in ``tmp``.

    16 images of 64x64 at ``tmp/synthvoc`` (4 per process and iteration,
    2 epochs), ``hook_source`` as the module ``hook_module`` (``tmp`` goes
    on ``PYTHONPATH``) and the config ``tmp/name``: the RCA SynthVOC config
    with the hook ``hook_class`` beside RCAHook, every region written to
    the bank, 4 prototypes, no validation, then the lines ``extra``.
    Returns the config's path.
    """
    root = small_synthvoc(tmp / 'synthvoc', num_train=16, num_train_subset=4)
    (tmp / f'{hook_module}.py').write_text(hook_source)
    cfg = tmp / name
    cfg.write_text(
        textwrap.dedent(f'''
        _base_ = ['{RCA_SYNTHVOC}']
        custom_imports = dict(imports=['{hook_module}'])
        custom_hooks = [
            dict(type='RCAHook'),
            dict(type='{hook_class}'),
        ]
        train_dataloader = dict(
            batch_size=4, num_workers=0, persistent_workers=False,
            dataset=dict(data_root='{root}'))
        model = dict(data_preprocessor=dict(size=(64, 64)),
                     backbone=dict(init_cfg=None),
                     head=dict(gate_threshold=0.0,
                               aggregation=dict(num_prototypes=4,
                                                num_init=1)))
        train_cfg = dict(max_epochs=2, val_interval=100)
        auto_scale_lr = dict(base_batch_size=8)  # 2 processes x 4
        # Training only: no validation (it would score the repository's
        # data).
        val_dataloader = None
        val_cfg = None
        val_evaluator = None
        ''') + textwrap.dedent(extra))
    return cfg


@pytest.fixture(scope='module')
def rca_checkpoint(tmp_path_factory):
    """A checkpoint of the RCA config of ``test_draw_rca_figures`` with its
    random initial weights and 2 random prototypes a class (seeded)."""
    protos = torch.randn(
        10, 2, 128, generator=torch.Generator().manual_seed(0))
    valid = torch.ones(10, 2, dtype=torch.bool)
    return random_checkpoint(RCA,
                             tmp_path_factory.mktemp('ckpt') / 'rca.pth',
                             (protos, valid))
