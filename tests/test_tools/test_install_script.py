"""tools/install.sh refuses a bad TORCH_CUDA (or torch version override)
before it creates or installs anything."""
import os
import subprocess

import pytest

from tests.conftest import REPO


def run_install(tmp_path, **env):
    venv = tmp_path / 'venv'
    proc = subprocess.run(['bash', 'tools/install.sh'],
                          cwd=REPO,
                          env=dict(
                              os.environ,
                              RCA_MM_VENV=str(venv),
                              RCA_MM_CACHE=str(tmp_path / 'cache'),
                              **env),
                          stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT,
                          text=True,
                          timeout=30)
    return proc.returncode, proc.stdout, venv


@pytest.mark.parametrize('tag',
                         ['bogus', 'cu12', 'cuda126', 'cu126;true', 'CU126'])
def test_bad_torch_cuda_fails_before_anything_is_installed(tmp_path, tag):
    code, out, venv = run_install(tmp_path, TORCH_CUDA=tag)
    assert code == 1, out
    assert f"TORCH_CUDA='{tag}' is not a build of torch" in out
    assert 'cu126, cu128 or cu130, or cpu' in out
    assert '"Installing for GPUs"' in out
    # Nothing created, nothing asked of pip.
    assert not venv.exists() and not (tmp_path / 'cache').exists()
    assert 'creating virtual environment' not in out


@pytest.mark.parametrize('env, message', [
    (dict(TORCH_VERSION='2.9.1'), 'set TORCH_VERSION and '
     'TORCHVISION_VERSION together'),
    (dict(TORCHVISION_VERSION='0.24.1'), 'set TORCH_VERSION and '
     'TORCHVISION_VERSION together'),
    (dict(TORCH_VERSION='2.9.1',
          TORCHVISION_VERSION='latest'), "'latest' is not a release number"),
])
def test_bad_version_override_fails_first(tmp_path, env, message):
    code, out, venv = run_install(tmp_path, TORCH_CUDA='cu126', **env)
    assert code == 1 and message in out, out
    assert not venv.exists()


def test_the_stamp_names_the_build():
    """Switching TORCH_CUDA or the versions must reinstall: the stamp the
    install compares holds them."""
    script = open(os.path.join(REPO, 'tools', 'install.sh')).read()
    stamp = script[script.index('stamp_value() {'):]
    stamp = stamp[:stamp.index('\n}\n')]
    assert '${TORCH_CUDA:-pypi}' in stamp and '$TORCH' in stamp
    assert '$TORCHVISION' in stamp and '$TORCH_INDEX' in stamp
    # The mmcv wheel cache is keyed by torch's full version (its CUDA tag),
    # and the build hides the GPUs (mmcv 2.1 builds CUDA ops when it sees
    # one, whatever FORCE_CUDA says).
    assert 'WHEELDIR="$CACHE/wheels/$PYTAG-torch$TORCH_FULL"' in script
    assert "CUDA_VISIBLE_DEVICES='' MMCV_WITH_OPS=1 FORCE_CUDA=0" in script
