"""The benchmark scripts in their ``--quick`` modes.

They check that each script runs end to end and prints what
docs/performance.md quotes: the machine line and a ratio or throughput, and
the agreements with references that ``benchmark_rca.py ops`` measures.
Timings are printed, never asserted.
"""
import re

import pytest

from ..conftest import run_tool

TOOLS = 'tools/analysis_tools'
MACHINE = re.compile(
    r'^machine: CPU .+; cores \d+; .*load average '
    r'[\d.]+/[\d.]+/[\d.]+$', re.M)
NUMBER = r'[\d.]+'


def check_machine(out: str) -> None:
    lines = MACHINE.findall(out)
    assert len(lines) >= 2, out  # before and after the results


def test_benchmark_rca_step_quick():
    out = run_tool([
        'python', f'{TOOLS}/benchmark_rca.py', 'step', '--quick', '--fp16',
        '--profile', '3'
    ])
    check_machine(out)
    assert 'torch threads 1' in out
    assert re.search(r'bank tiny \(\d+ entries, [\d.]+ MiB float32', out)
    for name in ('cam', 'rca', 'rca_fp16'):
        assert re.search(rf'^  {name} +median {NUMBER} s/step CPU', out,
                         re.M), out
    ratio = re.search(rf'ratio rca/cam = ({NUMBER})', out)
    assert ratio and float(ratio.group(1)) > 0, out
    assert 'ratio rca_fp16/cam' in out
    # float16 storage changes the RSC loss by a rounding error only.
    effect = re.search(r'relative change of the RSC loss (\S+)', out)
    assert effect and float(effect.group(1)) < 1e-2, out
    # --profile 3: one profiled step per variant, its 3 costliest ops.
    for name in ('cam', 'rca', 'rca_fp16'):
        assert f'profile of one {name} step, operators by self CPU' in out
    assert out.count('Self CPU time total') == 3, out


def test_benchmark_rca_sweep_quick():
    out = run_tool(['python', f'{TOOLS}/benchmark_rca.py', 'sweep', '--quick'])
    check_machine(out)
    assert re.search(r'entries +D=64 +D=128', out), out
    rows = re.findall(rf'^ +(200|1000)((?: +{NUMBER}){{2}})$', out, re.M)
    assert [r[0] for r in rows] == ['200', '1000'], out
    assert all(float(v) > 0 for r in rows for v in r[1].split())


def test_benchmark_rca_ops_quick():
    """k-means, the RSC loss and the bank against their references: the
    loss agrees with the loop written from Eq. 4-6 to float32 rounding,
    float16 storage changes the loss by a rounding error only."""
    pytest.importorskip('sklearn')
    out = run_tool([
        'python', f'{TOOLS}/benchmark_rca.py', 'ops', '--quick', '--threads',
        '1'
    ])
    check_machine(out)
    kmeans = re.findall(
        rf'^ +8 x 100 x (32|128) +(1|5) +{NUMBER} +{NUMBER} +{NUMBER}x '
        rf'+({NUMBER})$', out, re.M)
    assert [k[:2] for k in kmeans] == [('32', '1'), ('32', '5'), ('128', '1'),
                                       ('128', '5')], out
    # k-means++ from other draws than scikit-learn's: inertia within 5 %.
    assert all(0.95 < float(k[2]) < 1.05 for k in kmeans), out
    loss = re.search(
        rf'small \(10 cls\) +64 +{NUMBER} +{NUMBER} +{NUMBER}x '
        r'+(\S+)$', out, re.M)
    assert loss and float(loss.group(1)) < 1e-5, out
    bank = re.findall(
        rf'^ +(voc|coco) +\d+ +64 +(float32|float16) +{NUMBER} +{NUMBER} '
        rf'+({NUMBER}) *(\S*)$', out, re.M)
    assert [b[:2] for b in bank] == [('voc', 'float32'), ('voc', 'float16'),
                                     ('coco', 'float32'),
                                     ('coco', 'float16')], out
    for f32, f16 in (bank[:2], bank[2:]):
        assert float(f16[3]) < 1e-4 * float(f32[2]), out


def test_benchmark_cam_export_quick():
    out = run_tool(['python', f'{TOOLS}/benchmark_cam_export.py', '--quick'])
    check_machine(out)
    assert re.search(r'4 images of 64x64 \(generated SynthVOC\)', out), out
    rate = re.search(rf'throughput ({NUMBER}) images/s', out)
    assert rate and float(rate.group(1)) > 0, out
    shares = re.findall(
        rf'^  (data|model|metric) +{NUMBER} ms/image wall '
        rf'+({NUMBER})%', out, re.M)
    assert [s[0] for s in shares] == ['data', 'model', 'metric'], out
    assert sum(float(s[1]) for s in shares) == pytest.approx(100, abs=0.5)
    assert 'scale-1 score pass' in out


def test_benchmark_crf_quick():
    pytest.importorskip('pydensecrf.densecrf')
    out = run_tool(['python', f'{TOOLS}/benchmark_crf.py', '--quick'])
    check_machine(out)
    assert re.search(r'crf: 4 images of \d+ kpixels', out), out
    for workers in (1, 2):
        assert re.search(rf'workers {workers}: {NUMBER} images/s', out), out
    assert re.search(rf'ratio 2 workers / 1 = {NUMBER}x', out), out
