"""rca_mm.apis.pipeline_steps: the steps of the resumable pipeline, their
records, logs and progress lines.

(tests/test_tools/test_run_pipeline.py runs the whole chain.)"""
import json
import platform
import sys

import pytest
import torch

from rca_mm.apis.pipeline_steps import (Pipeline, StepFailed,
                                        check_total_batches, condense,
                                        last_checkpoint, machine_info)
from rca_mm.utils.benchmark import cpu_model


def test_last_checkpoint_follows_a_moved_work_dir(tmp_path):
    (tmp_path / 'epoch_8.pth').write_bytes(b'')
    (tmp_path / 'last_checkpoint').write_text('/gone/stage1/epoch_8.pth')
    assert last_checkpoint(str(tmp_path)) == str(tmp_path / 'epoch_8.pth')
    (tmp_path / 'last_checkpoint').write_text('/gone/stage1/epoch_9.pth')
    assert last_checkpoint(str(tmp_path)) == '/gone/stage1/epoch_9.pth'
    (tmp_path / 'last_checkpoint').unlink()
    with pytest.raises(StepFailed, match='no last_checkpoint'):
        last_checkpoint(str(tmp_path))


def test_condense_keeps_the_loop_eta_loss_and_results():
    train = ('12/01 22:07:41 - mmengine - INFO - Epoch(train) [1][ 75/125]  '
             'lr: 5.0000e-02  eta: 0:00:58  time: 0.2752  data_time: 0.0185'
             '  loss: 4.0132')
    assert condense(train) == ('Epoch(train) [1][ 75/125] eta 0:00:58 '
                               'loss 4.0132', False)
    val = ('12/01 22:08:46 - mmengine - INFO - Epoch(val) [1][16/16]    '
           'accuracy/top1: 19.5000  accuracy/top5: 59.4000')
    assert condense(val) == ('Epoch(val) [1][16/16] accuracy/top1: '
                             '19.5000  accuracy/top5: 59.4000', True)
    test = ('12/01 22:09:01 - mmengine - INFO - Epoch(test) [ 50/125]    '
            'eta: 0:00:10  time: 0.3000  data_time: 0.0100')
    assert condense(test) == ('Epoch(test) [ 50/125] eta 0:00:10', False)
    assert condense('[>>>>     ] 20/100, 5.0 task/s') == (
        '[>>>>     ] 20/100, 5.0 task/s', False)
    assert condense('12/01 - mmengine - WARNING - something') is None
    assert condense('Traceback (most recent call last):') is None


def test_a_step_runs_once_records_itself_and_a_failure_names_its_log(
        tmp_path, capsys):
    pipe = Pipeline(str(tmp_path / 'work'))
    count = tmp_path / 'count.txt'
    count.write_text('')
    cmd = [sys.executable, '-c', f'open("{count}", "a").write("x")']
    first = pipe.run('a', cmd, record=dict(note=1))
    assert first['note'] == 1 and first['command'] == cmd
    assert first['machine'] == machine_info()  # where the step ran
    assert pipe.done('a') == first  # the marker, read back
    assert count.read_text() == 'x'
    # A finished step is skipped.
    assert pipe.run('a', cmd) == first
    assert count.read_text() == 'x'
    assert 'a: done before, skipped' in capsys.readouterr().out
    assert set(pipe.step_seconds(('a', 'b'))) == {'a'}
    # A failing step: its name, exit code and the end of its log; no marker.
    with pytest.raises(
            StepFailed, match=r'step "b" failed \(exit 3\)'
            r'(.|\n)*last words'):
        pipe.run(
            'b',
            [sys.executable, '-c', 'print("last words"); raise SystemExit(3)'])
    assert pipe.done('b') is None


def test_a_step_in_this_process_logs_its_output_and_condenses_progress(
        tmp_path, capsys):
    """A step run in this process: its prints and warnings in its log, the
    logger's result lines on the terminal, the command it stands for in its
    record; an exception fails the step with its traceback in the log."""
    pipe = Pipeline(str(tmp_path / 'work'))
    result = ('12/01 22:08:46 - mmengine - INFO - Epoch(val) [1][16/16]    '
              'accuracy/top1: 19.5000')

    def step():
        print('hello')
        print(result)
        print('a warning', file=sys.stderr)
        print('no newline at the end', end='')

    record = pipe.run('a', ['python', 'tools/a.py'], step)
    assert record['command'] == ['python', 'tools/a.py']
    log = (tmp_path / 'work' / 'logs' / 'a.log').read_text()
    assert log == ('hello\n' + result + '\na warning\n'
                   'no newline at the end\n')
    out = capsys.readouterr().out
    assert '[pipeline] a: python tools/a.py' in out
    assert '[pipeline]   a | Epoch(val) [1][16/16] accuracy/top1: 19.5000' \
        in out
    assert 'hello' not in out
    assert sys.stdout is not None and 'a.log' not in repr(sys.stdout)

    def fails():
        print('last words')
        raise KeyError('model.head.gate_treshold')

    with pytest.raises(
            StepFailed,
            match=r'step "b" failed \(KeyError\)'
            r'(.|\n)*last words(.|\n)*gate_treshold'):
        pipe.run('b', ['python', 'tools/b.py'], fails)
    assert pipe.done('b') is None
    print('after the steps')
    assert 'after the steps' in capsys.readouterr().out


def test_machine_info_names_what_the_numbers_depend_on():
    info = machine_info()
    assert sorted(info) == [
        'cpu', 'cpu_capability', 'cpu_count', 'gpu', 'platform', 'python',
        'torch', 'torch_cuda', 'torch_threads'
    ]
    assert (info['cpu'], info['platform'],
            info['python']) == (cpu_model(), platform.platform(),
                                platform.python_version())
    assert (info['torch'], info['torch_cuda'], info['torch_threads'],
            info['cpu_capability']) == (
                torch.__version__, torch.version.cuda, torch.get_num_threads(),
                torch.backends.cpu.get_cpu_capability())
    assert info['cpu']
    assert info['cpu_count'] >= 1 and info['torch_threads'] >= 1
    assert isinstance(info['cpu_capability'], str) and info['cpu_capability']
    assert (info['gpu'] is None) == (not torch.cuda.is_available())
    assert json.loads(json.dumps(info)) == info  # goes into summary.json
    # The thread count is read when called: two machines that differ only
    # in it are told apart.
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(threads + 1)
        assert machine_info()['torch_threads'] == threads + 1
    finally:
        torch.set_num_threads(threads)


STAGE1 = 'configs/rca/rca_eps_r38_voc.py'
STAGE2 = 'configs/deeplabv2/deeplabv2_r101_voc.py'


@pytest.mark.parametrize('gpus', [1, 2])
def test_check_total_batches_passes_when_the_totals_divide(gpus):
    # Stage 1's total of 8 and DeepLabV2's of 10 divide among 1 and 2.
    check_total_batches([(STAGE1, []), (STAGE2, [])], gpus)


def test_check_total_batches_refuses_stage2_before_any_step():
    # 10 does not divide among 4 processes: refused up front, naming the
    # config and the keys, instead of after stage 1 has trained.
    with pytest.raises(StepFailed) as err:
        check_total_batches([(STAGE1, []), (STAGE2, [])], 4)
    msg = str(err.value)
    assert STAGE2 in msg and 'auto_scale_lr.base_batch_size' in msg
    assert '--stage2-cfg-options' in msg


@pytest.mark.parametrize('options', [
    ['auto_scale_lr.base_batch_size=12'],
    ['train_dataloader.batch_size=3'],
])
def test_check_total_batches_takes_the_options(options):
    # Either documented way out of the refusal passes the check.
    check_total_batches([(STAGE1, []), (STAGE2, options)], 4)
