import re

import pytest
import torch

from rca_mm.utils.benchmark import (benchmark_parser, cost, cost_name,
                                    machine_line, measure,
                                    random_weights_config)

CONFIG = 'configs/synthvoc/cam_r18-w16_8e_synthvoc-112x112.py'


def test_benchmark_parser_common_options():
    args = benchmark_parser(
        'x', config=CONFIG).parse_args(['--threads', '1', '--quick'])
    assert (args.config, args.device, args.threads, args.seed,
            args.quick) == (CONFIG, 'cpu', 1, 0, True)
    args = benchmark_parser('x', device=False).parse_args([])
    assert not hasattr(args, 'device') and not hasattr(args, 'config')


def test_measure_and_cost():
    wall, cpu, out = measure(lambda: sum(range(10000)), torch.device('cpu'))
    assert out == sum(range(10000)) and wall >= 0 and cpu >= 0
    assert cost(2.0, 1.0, torch.device('cpu')) == 1.0
    assert cost(2.0, 1.0, torch.device('cuda')) == 2.0
    assert cost_name(torch.device('cpu')) == 'CPU'
    assert cost_name(torch.device('cuda')) == 'wall'


def test_machine_line():
    line = machine_line(extra='workers 2')
    assert re.fullmatch(
        r'machine: CPU .+; cores \d+; torch threads \d+; torch \S+; device '
        r'cpu; workers 2; load average [\d.]+/[\d.]+/[\d.]+', line), line


def test_random_weights_config():
    cfg = random_weights_config(CONFIG)
    assert 'init_cfg' not in cfg.model.backbone
    with pytest.raises(FileNotFoundError, match='no_such.py'):
        random_weights_config('no_such.py')
