import re

import pytest
import torch

from rca_mm.utils.benchmark import (benchmark_parser, cost, cost_name,
                                    machine_line, measure,
                                    random_weights_config, synthetic_tags)

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


@pytest.mark.parametrize('classes, per_image', [(20, 1.5), (80, 2.9),
                                                (20, 1.0)])
def test_synthetic_tags_mean_and_draws(classes, per_image):
    """Every image has at least one tag, the mean is the one asked for
    (binomial standard error at 20,000 images: under 0.01), and the same
    generator seed gives the same tags."""
    tags = synthetic_tags(classes, 20000, per_image,
                          torch.Generator().manual_seed(0))
    assert tags.shape == (20000, classes) and tags.dtype == torch.bool
    assert bool(tags.any(1).all())
    assert tags.sum(1).float().mean().item() == pytest.approx(
        per_image, abs=0.03)
    again = synthetic_tags(classes, 20000, per_image,
                           torch.Generator().manual_seed(0))
    assert torch.equal(tags, again)
    # The first tag is uniform over the classes.
    counts = tags.sum(0).float()
    assert counts.min() > 0.8 * counts.mean()
    if per_image == 1.0:
        assert bool((tags.sum(1) == 1).all())
