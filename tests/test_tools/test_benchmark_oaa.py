"""``tools/analysis_tools/benchmark_oaa.py --quick`` runs and prints the
variants side by side (what is printed, never a time)."""
import re

from ..conftest import run_tool


def test_benchmark_oaa_quick():
    out = run_tool([
        'python', 'tools/analysis_tools/benchmark_oaa.py', '--quick',
        '--threads', '1', '--flush-threads', '2'
    ])
    assert out.startswith('machine: CPU ')
    assert '32 images x 1.5 tags of 4 classes, batch 8, maps 32x32, 4 steps' \
        in out
    for name in ('every step', 'in memory, 1 thr', 'in memory, 2 thr'):
        assert re.search(rf'^{name} +[\d.]+ +[\d.]+ +[\d.]+ +[\d.]+ +[\d.]+$',
                         out, re.M), out
        if name != 'every step':
            assert f'every step / {name}: step ' in out
    # float16 32x32 maps: 2 KiB of data and the array header each.
    held = re.search(r'for (\d+) \(image, class\) maps, ([\d.]+) KiB each',
                     out)
    assert held and int(held.group(1)) > 32
    assert 2.0 < float(held.group(2)) < 2.2
