import re

import pytest
import torch

from rca_mm.utils.benchmark import (BANKS, add_benchmark_options,
                                    benchmark_parser, cost, cost_name,
                                    fill_bank, interleaved, machine_line,
                                    measure, random_weights_config, step_fn,
                                    synthetic_tags)

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


def test_add_benchmark_options_on_a_subcommand():
    import argparse
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest='mode')
    add_benchmark_options(sub.add_parser('a'), device=False)
    args = parser.parse_args(['a', '--threads', '2', '--seed', '3'])
    assert (args.mode, args.threads, args.seed, args.quick) == ('a', 2, 3,
                                                                False)
    assert not hasattr(args, 'device')


@pytest.mark.parametrize('cap', [None, 3])
def test_fill_bank_writes_every_slot(cap):
    from rca_mm.models.memory.region_memory_bank import RegionMemoryBank
    num_classes, num_images, per_image, _ = BANKS['tiny']
    gen = torch.Generator().manual_seed(0)
    tags = synthetic_tags(num_classes, num_images, per_image, gen)
    bank = RegionMemoryBank(
        num_classes=num_classes, feat_dim=8, capacity_per_class=cap)
    fill_bank(bank, tags, gen, chunk=50)
    expected = tags.sum(0) if cap is None else tags.sum(0).clamp(max=cap)
    assert bank.num_written() == int(expected.sum())
    feats, classes = bank.written_entries()
    assert torch.equal(
        torch.bincount(classes, minlength=num_classes), expected)
    assert bool((feats >= 0).all() and (feats < 1).all())
    assert bool((feats.abs().sum(1) > 0).all())


def test_interleaved_alternates_and_drops_the_warmup():
    calls = []

    def fn(name):

        def run():
            calls.append(name)
            return float(len(calls)), 0.0

        return run

    times = interleaved(dict(a=fn('a'), b=fn('b')), warmup=1, repeat=2)
    assert calls == ['a', 'b', 'b', 'a', 'a', 'b']
    assert times == dict(
        a=[(4.0, 0.0), (5.0, 0.0)], b=[(3.0, 0.0), (6.0, 0.0)])


def test_step_fn_takes_one_sgd_step():
    model = torch.nn.Linear(2, 1)

    class Loss(torch.nn.Module):

        def __init__(self):
            super().__init__()
            self.lin = model

        def loss(self, inputs, samples):
            return dict(a=self.lin(inputs).sum(), b=torch.tensor(1.0))

    wrapped = Loss()
    inputs = torch.ones(3, 2)
    before = model.weight.detach().clone()
    wall, cpu = step_fn(wrapped, inputs, [], torch.device('cpu'))()
    assert wall >= 0 and cpu >= 0
    # d(sum of 3 outputs)/dw = 3 per weight; lr 1e-5, no momentum yet.
    assert torch.allclose(model.weight.detach(), before - 3e-5)
