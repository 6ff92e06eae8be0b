"""Release files: they load strictly through init_model and give the
training checkpoint's CAMs; the pipeline's release directory."""
import json
import os
import os.path as osp
import shutil

import numpy as np
import torch

from rca_mm.apis import init_model, publish_checkpoint, release_run
from rca_mm.apis.publish import file_sha256
from rca_mm.utils.safe_checkpoint import safe_torch_load
from .conftest import NO_PRETRAIN, RCA_EPS
from .test_cam_inferencer import own_predict


def test_release_loads_strictly_and_gives_the_same_cams(
        rca_eps_ckpt, images, tmp_path):
    _, ckpt = rca_eps_ckpt
    released = publish_checkpoint(ckpt, str(tmp_path / 'rca-eps.pth'))
    sha = file_sha256(released)
    assert osp.basename(released) == f'rca-eps-{sha[:8]}.pth'
    content = safe_torch_load(released)
    assert set(content) == {'state_dict', 'meta'}
    # The run's description stays, the RNG states (for --resume) go.
    assert 'rng_state' in safe_torch_load(ckpt)['meta']
    assert set(content['meta']) == {'epoch', 'seed', 'dataset_meta'}
    assert content['state_dict']['head.memory_bank.feats'].shape[0] == 0
    assert osp.getsize(released) < osp.getsize(ckpt)

    trained = init_model(RCA_EPS, ckpt, cfg_options=NO_PRETRAIN)
    public = init_model(RCA_EPS, released, cfg_options=NO_PRETRAIN)
    assert trained.head.memory_bank.is_allocated
    assert not public.head.memory_bank.is_allocated
    assert public.dataset_meta['classes'] == trained.dataset_meta['classes']
    for path in images:
        a, b = own_predict(trained, path), own_predict(public, path)
        assert torch.equal(a.pred_cams.data, b.pred_cams.data)
        assert torch.equal(a.pred_bg.data, b.pred_bg.data)
        assert torch.equal(a.pred_score, b.pred_score)


def test_release_run_publishes_checkpoints_logs_and_summary(
        rca_eps_ckpt, tmp_path):
    _, ckpt = rca_eps_ckpt
    work = tmp_path / 'work'
    (work / 'logs').mkdir(parents=True)
    (work / 'stage1').mkdir()
    shutil.copy(ckpt, work / 'stage1' / 'epoch_8.pth')
    for step in ('stage1', 'pseudo'):
        (work / 'logs' / f'{step}.log').write_text(f'log of {step}\n')
    (work / 'summary.json').write_text('{"seed": 0}')
    config = 'configs/synthvoc/rca-eps_r18-w16_8e_synthvoc-112x112.py'
    models = [('stage1', config, str(work / 'stage1' / 'epoch_8.pth'))]
    manifest = release_run(
        str(work), models, ('stage1', 'pseudo', 'val'),
        str(work / 'summary.json'))
    release = work / 'release'
    entry = manifest['models']['stage1']
    assert entry['file'].startswith('rca-eps_r18-w16_8e_synthvoc-112x112-')
    assert entry['sha256'] == file_sha256(str(release / entry['file']))
    assert entry['sha256'][:8] in entry['file']
    assert entry['source'] == osp.join('stage1', 'epoch_8.pth')
    assert manifest['logs'] == ['logs/stage1.log', 'logs/pseudo.log']
    assert (release / 'logs' / 'pseudo.log').read_text() == 'log of pseudo\n'
    assert json.loads((release / 'summary.json').read_text()) == {'seed': 0}
    assert json.loads((release / 'manifest.json').read_text()) == manifest
    assert 'rng_state' not in safe_torch_load(str(release /
                                                  entry['file']))['meta']
    # A later run of another checkpoint replaces the file of that config.
    state = safe_torch_load(ckpt)
    state['state_dict']['head.classifier.weight'] += 1
    torch.save(state, str(work / 'stage1' / 'epoch_8.pth'))
    again = release_run(str(work), models, ('stage1', ))
    files = sorted(f for f in os.listdir(release) if f.endswith('.pth'))
    assert files == [again['models']['stage1']['file']]
    assert files[0] != entry['file']
    assert not any(f.endswith('.unhashed') for f in os.listdir(release))
    np.testing.assert_array_equal(
        safe_torch_load(
            str(release /
                files[0]))['state_dict']['head.classifier.weight'].numpy(),
        state['state_dict']['head.classifier.weight'].numpy())


def test_pipeline_release_takes_the_finished_trainings(rca_eps_ckpt, tmp_path):
    """Pipeline.release publishes the last checkpoint of each finished
    training step (stage 2 not run: only stage 1)."""
    from rca_mm.apis.pipeline_steps import Pipeline
    _, ckpt = rca_eps_ckpt
    work = tmp_path / 'work'
    pipe = Pipeline(str(work))
    (work / 'stage1').mkdir()
    shutil.copy(ckpt, work / 'stage1' / 'epoch_8.pth')
    (work / 'stage1' / 'last_checkpoint').write_text(
        str(work / 'stage1' / 'epoch_8.pth'))
    (work / 'steps').mkdir()
    (work / 'steps' / 'stage1.json').write_text('{"seconds": 1}')
    (work / 'logs' / 'stage1.log').write_text('trained\n')
    manifest = pipe.release(
        dict(stage1='configs/a/rca.py', stage2='configs/b/seg.py'),
        ('stage1', 'stage2'))
    assert list(manifest['models']) == ['stage1']
    assert manifest['models']['stage1']['file'].startswith('rca-')
    assert manifest['logs'] == ['logs/stage1.log']
    assert sorted(os.listdir(work / 'release')) == [
        'logs', 'manifest.json', manifest['models']['stage1']['file']
    ]
