"""tools/gpu_check.sh and tools/analysis_tools/gpu_check.py on a CPU: the
script says there is no GPU and exits 0; the measuring code runs at tiny
sizes; the training check's config, hooks, kill and resume work in one
process; the rank comparison and the memory estimate are right."""
import importlib.util
import json
import os
import os.path as osp

import pytest
import torch

from tests.conftest import REPO, SERIAL_LOADERS, run_tool

SCRIPT = 'tools/analysis_tools/gpu_check.py'
ENV = dict(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')


@pytest.fixture(scope='module')
def gpu_check():
    spec = importlib.util.spec_from_file_location('gpu_check',
                                                  osp.join(REPO, SCRIPT))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_without_a_gpu_the_script_says_so_and_exits_0(tmp_path):
    code, out = run_tool(['bash', 'tools/gpu_check.sh', tmp_path / 'work'],
                         env=dict(CUDA_VISIBLE_DEVICES=''),
                         check=False,
                         timeout=120)
    assert code == 0, out
    assert 'no CUDA device' in out
    assert 'nothing to check' in out
    assert not (tmp_path / 'work').exists()  # nothing written


def test_measure_tiny_on_cpu_and_summary(tmp_path):
    work = tmp_path / 'work'
    run_tool([
        'python', SCRIPT, 'measure', '--device', 'cpu', '--tiny', '--threads',
        '1', '--work-dir', work
    ],
             env=ENV,
             timeout=300)
    result = json.loads((work / 'parts' / 'measure.json').read_text())
    assert result['tiny'] and result['device'] == 'cpu'
    assert result['sync']['applicable'] is False
    assert result['sync']['points'] == []
    memory = result['memory']
    assert set(memory) == {
        'synthvoc_rca_eps_32_b2', 'synthvoc_deeplabv2_msc_32_b2'
    }
    for m in memory.values():
        assert 'error' not in m, m
        assert m['saved_for_backward_mib'] > 0
        assert m['estimate_mib'] == pytest.approx(
            m['saved_for_backward_mib'] + m['state_mib'], abs=0.11)
    rms = result['feature_rms']['random_init']
    assert rms['channels'] == 128 and 0 < rms['rms'] < 1e3
    assert rms['d_rms2'] == pytest.approx(128 * rms['rms']**2)
    timing = result['step_time']
    assert timing['clock'] == 'CPU' and timing['batch'] == 2
    assert timing['rca_s'] > 0 and timing['baseline_s'] > 0
    assert timing['ratio'] == pytest.approx(
        timing['rca_s'] / timing['baseline_s'], rel=2e-3)
    out = run_tool(['python', SCRIPT, 'summary', '--work-dir', work])
    text = (work / 'gpu_check.txt').read_text()
    assert text.splitlines()[0] == 'rca_mm GPU check'
    assert 'memory synthvoc_rca_eps_32_b2: CPU estimate' in text
    assert 'synchronisations: CUDA only' in text
    assert 'step time at 32x32, batch 2' in text and text in out + '\n'
    merged = json.loads((work / 'gpu_check.json').read_text())
    assert merged['measure'] == result


def test_memory_estimate_is_linear_in_pixels(gpu_check):
    """The estimate's premise: autograd's saved bytes grow linearly with
    the pixels, so two small sizes predict a third."""
    from mmengine.registry import init_default_scope
    init_default_scope('rca_mm')
    cfg = gpu_check.SYNTHVOC_RCA
    est = gpu_check.estimate_memory(cfg, 3, 128, 'tiny', (64, 96))
    device = torch.device('cpu')
    model = gpu_check.build_model(cfg, device)
    gpu_check.prepare_rca(model, 'tiny', 0)
    inputs, samples = gpu_check.make_batch(model, 3, 128, device)
    measured = gpu_check.saved_bytes(
        gpu_check.make_step(model, inputs, samples), model) / 2**20
    assert est['activations_mib'] == pytest.approx(measured, rel=0.05)
    weights, other = gpu_check.state_bytes(model)
    assert est['state_mib'] == pytest.approx(
        (weights + other) / 2**20, abs=0.06)


def _dump(path, bank, protos):
    torch.save(
        {
            'head.memory_bank.feats': bank,
            'head.memory_bank.written': torch.ones(3, dtype=torch.bool),
            'head.aggregation.prototypes': protos,
            'head.aggregation.prototype_valid': torch.tensor([True, False])
        }, path)


def test_compare_ranks(gpu_check, tmp_path):
    bank, protos = torch.randn(3, 4), torch.randn(2, 4)
    _dump(tmp_path / 'rank0.pt', bank, protos)
    _dump(tmp_path / 'rank1.pt', bank.clone(), protos.clone())
    state = {
        'head.memory_bank.feats': bank,
        'head.memory_bank.written': torch.ones(3, dtype=torch.bool),
        'head.aggregation.prototypes': protos,
        'head.aggregation.prototype_valid': torch.tensor([True, False]),
        'backbone.w': torch.zeros(1)
    }
    torch.save(dict(state_dict=state), tmp_path / 'epoch_2.pth')
    torch.save(
        dict(state_dict={
            k: v + 1 if v.is_floating_point() else v
            for k, v in state.items()
        }), tmp_path / 'epoch_10.pth')  # the last one, by number
    logs = tmp_path / '20261206_000000' / 'vis_data'
    logs.mkdir(parents=True)
    (logs / 'scalars.json').write_text(
        json.dumps(dict(loss=1.5, loss_rsc=0.1, lr=0.01, step=1)) + '\n')
    result = gpu_check.compare_ranks(str(tmp_path))
    assert result['ranks'] == 2 and result['identical'] is True
    assert result['finite'] is True and result['losses_finite'] is True
    assert result['losses_logged'] == 2
    assert result['bank_written'] == 3 and result['prototypes_valid'] == 1
    assert result['checkpoint'] == 'epoch_10.pth'
    assert result['equal_to_checkpoint'] is False
    (tmp_path / 'epoch_10.pth').unlink()
    assert gpu_check.compare_ranks(str(tmp_path))['equal_to_checkpoint']
    # One rank's prototypes differ by one ulp; a NaN in its bank.
    bad = bank.clone()
    bad[0, 0] = float('nan')
    _dump(tmp_path / 'rank1.pt', bad, torch.nextafter(protos, protos + 1))
    (logs / 'scalars.json').write_text(json.dumps(dict(loss=float('nan'))))
    result = gpu_check.compare_ranks(str(tmp_path))
    assert result['identical'] is False and result['finite'] is False
    assert result['differing_keys'] == [
        'head.aggregation.prototypes', 'head.memory_bank.feats'
    ]
    assert result['losses_finite'] is False
    assert 'error' in gpu_check.compare_ranks(str(tmp_path / 'none'))


def test_training_check_kill_resume_in_one_process(gpu_check, tmp_path):
    """Step 2 of gpu_check.sh with tools/train.py on a CPU: the written
    config trains, the hook kills the run after iteration 6, --resume
    finishes it, and the rank-0 dump equals the last checkpoint."""
    work = tmp_path / 'work'
    run_tool(['python', SCRIPT, 'prepare', '--work-dir', work, '--gpus', '1'],
             env=ENV)
    cfg = work / 'check_cfg.py'
    assert (work / 'gpu_check_hooks.py').exists()
    run = work / 'train_fp32'
    env = dict(ENV, PYTHONPATH=f'{work}{os.pathsep}{REPO}')
    options = ['--cfg-options', 'train_dataloader.num_workers=0'
               ] + [o for o in SERIAL_LOADERS if o.startswith('train_')]
    code, log = run_tool(
        ['python', 'tools/train.py', cfg, '--work-dir', run] + options,
        env=dict(env, GPU_CHECK_KILL_AT='6'),
        check=False,
        timeout=600)
    assert code != 0 and 'gpu_check: killing rank 0 at iteration 6' in log
    assert (run / 'epoch_1.pth').exists()
    assert not (run / 'epoch_2.pth').exists()
    log = run_tool(
        ['python', 'tools/train.py', cfg, '--work-dir', run, '--resume'] +
        options,
        env=env,
        timeout=600)
    assert 'resumed epoch: 1, iter: 4' in log
    (run /
     'gpu_check.log').write_text('gpu_check: killing rank 0 at iteration 6\n' +
                                 log)
    out = run_tool([
        'python', SCRIPT, 'compare-ranks', '--work-dir', work, '--run', run,
        '--name', 'train_fp32'
    ])
    result = json.loads((work / 'parts' / 'train_fp32.json').read_text())
    assert result['ranks'] == 1 and result['identical'] is True, out
    assert result['equal_to_checkpoint'] is True
    assert result['checkpoint'] == 'epoch_2.pth'
    assert result['finite'] and result['losses_finite']
    assert result['bank_written'] > 0
    assert result['killed'] is True
    assert result['resumed_from'] == 'resumed epoch: 1, iter: 4'
    # The feature RMS of the trained checkpoint (measure --checkpoint).
    from mmengine.registry import init_default_scope
    init_default_scope('rca_mm')
    rms = gpu_check.checkpoint_rms(
        str(run / 'epoch_2.pth'), str(work / 'synthvoc'),
        gpu_check.SYNTHVOC_RCA, torch.device('cpu'))
    assert rms['images'] == 8 and rms['channels'] == 128
    assert 0 < rms['rms'] <= rms['max_abs']


def test_env_without_a_device(gpu_check, tmp_path):
    code, out = run_tool(['python', SCRIPT, 'env', '--work-dir', tmp_path],
                         env=dict(CUDA_VISIBLE_DEVICES=''),
                         check=False)
    assert code == 0 and 'no CUDA device' in out
    info = json.loads((tmp_path / 'parts' / 'env.json').read_text())
    assert info['devices'] == [] and info['supported'] is True
    assert info['torch'] == torch.__version__
