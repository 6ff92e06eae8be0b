"""tools/model_converters/publish_model.py: weights only, bank emptied."""
import glob
import hashlib
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from rca_mm.engine.config_checks import check_checkpoint_fits
from rca_mm.engine.hooks.rng_state_hook import get_rng_state
from rca_mm.registry import MODELS
from rca_mm.utils import register_all_modules
from rca_mm.utils.safe_checkpoint import safe_torch_load
from tests.conftest import REPO, run_tool

CONFIG = 'configs/synthvoc/rca_r18-w16_8e_synthvoc-112x112.py'


def _model():
    register_all_modules()
    model = MODELS.build(Config.fromfile(osp.join(REPO, CONFIG)).model)
    return model.eval()


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """A checkpoint of an RCA model with a filled bank and prototypes."""
    torch.manual_seed(0)
    model = _model()
    head = model.head
    bank = head.memory_bank
    labels = torch.zeros(6, head.num_classes, dtype=torch.bool)
    labels[torch.arange(6), torch.arange(6) % head.num_classes] = True
    bank.allocate(labels)
    bank.update(
        torch.randn(6, bank.feat_dim),
        torch.arange(6) % head.num_classes, torch.arange(6))
    # Valid prototypes (all but the last of each class), so that F' != 0
    # and the CAMs depend on them.
    protos = torch.randn_like(head.aggregation.prototypes)
    valid = torch.ones(protos.shape[:2], dtype=torch.bool)
    valid[:, -1] = False
    head.aggregation.set_prototypes(protos, valid)
    state = model.state_dict()
    path = str(tmp_path_factory.mktemp('ckpt') / 'epoch_8.pth')
    # RNGStateHook's snapshot, one entry per rank, as a training checkpoint
    # holds it (rca_mm/engine/hooks/rng_state_hook.py).
    rng_state = [get_rng_state(), get_rng_state()]
    torch.save(
        dict(
            state_dict=state,
            meta=dict(epoch=8, seed=0, rng_state=rng_state),
            optimizer=dict(state={}, param_groups=[dict(lr=0.1)]),
            message_hub=dict(runtime_info=dict(iter=3))), path)
    return model, path


def _publish(path, out, *extra):
    run_tool(['python', 'tools/model_converters/publish_model.py', path, out] +
             list(extra))
    (found, ) = glob.glob(out[:-len('.pth')] + '-*.pth')
    return found


def test_release_holds_weights_and_an_empty_bank(trained, tmp_path):
    model, path = trained
    released = _publish(path, str(tmp_path / 'rca_synthvoc.pth'))
    with open(released, 'rb') as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    assert released.endswith(f'rca_synthvoc-{sha[:8]}.pth')
    assert not glob.glob(str(tmp_path / '*.unhashed'))
    ckpt = safe_torch_load(released)
    assert set(ckpt) == {'state_dict', 'meta'}
    # meta keeps what describes the run; the RNG states only --resume needs.
    assert ckpt['meta'] == dict(epoch=8, seed=0)
    assert 'rng_state' in safe_torch_load(path)['meta']
    original = model.state_dict()
    assert set(ckpt['state_dict']) == set(original)
    assert original['head.memory_bank.feats'].shape[0] > 0
    assert ckpt['state_dict']['head.memory_bank.feats'].shape == (
        0, model.head.memory_bank.feat_dim)
    assert int(ckpt['state_dict']['head.memory_bank.num_images']) == 0
    for key, value in original.items():
        if '.memory_bank.' not in key:
            assert torch.equal(ckpt['state_dict'][key], value), key
    assert osp.getsize(released) < osp.getsize(path)


def test_release_loads_strictly_and_gives_the_same_cams(trained, tmp_path):
    model, path = trained
    released = _publish(path, str(tmp_path / 'rca.pth'))
    fresh = _model()
    check_checkpoint_fits(fresh, released)  # raises on a missing key
    fresh.load_state_dict(safe_torch_load(released)['state_dict'])
    assert not fresh.head.memory_bank.is_allocated
    inputs = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(
            fresh(inputs, mode='tensor'), model(inputs, mode='tensor'))
    aggregation = fresh.head.aggregation
    assert torch.equal(aggregation.prototype_valid,
                       model.head.aggregation.prototype_valid)
    assert aggregation.prototype_valid.sum(
    ) == aggregation.prototypes.shape[0] * (
        aggregation.prototypes.shape[1] - 1)
    # The prototypes matter: zeroed, F' = S 0 = 0 and the CAMs change.
    aggregation.prototypes.zero_()
    with torch.no_grad():
        assert not torch.allclose(
            fresh(inputs, mode='tensor'), model(inputs, mode='tensor'))


def test_keep_bank_and_bad_paths(trained, tmp_path):
    model, path = trained
    kept = _publish(path, str(tmp_path / 'kept.pth'), '--keep-bank')
    state = safe_torch_load(kept)['state_dict']
    assert torch.equal(state['head.memory_bank.feats'],
                       model.state_dict()['head.memory_bank.feats'])
    rc, out = run_tool([
        'python', 'tools/model_converters/publish_model.py',
        str(tmp_path / 'missing.pth'), 'x.pth'
    ],
                       check=False)
    assert rc == 2 and 'missing.pth' in out and 'does not exist' in out
    rc, out = run_tool([
        'python', 'tools/model_converters/publish_model.py', path,
        str(tmp_path / 'out.ckpt')
    ],
                       check=False)
    assert rc == 2 and 'must end with .pth' in out
