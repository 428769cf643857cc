"""A non-editable install: the wheel carries the configs, and the CLI and the config lookup work from it."""
import os
import subprocess
import sys

import pytest

from mammo_det.apis.configs import list_configs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_wheel_into_a_fresh_venv_finds_configs_and_runs_demo_help(tmp_path):
    src = tmp_path / 'src'
    files = subprocess.run(['git', 'ls-files', '-co', '--exclude-standard'], cwd=REPO, capture_output=True, text=True,
                           check=True).stdout.split()
    src.mkdir()
    subprocess.run(['tar', '-cf', '-', *files], cwd=REPO, check=True, stdout=open(tmp_path / 'src.tar', 'wb'))
    subprocess.run(['tar', '-xf', str(tmp_path / 'src.tar')], cwd=src, check=True)
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-q', '-w',
                    str(tmp_path / 'dist'), str(src)], check=True, capture_output=True)
    wheel = next((tmp_path / 'dist').glob('mammo_det-*.whl'))
    venv = tmp_path / 'venv'
    subprocess.run([sys.executable, '-m', 'venv', str(venv)], check=True)
    subprocess.run([str(venv / 'bin' / 'python'), '-m', 'pip', 'install', '-q', '--no-deps', '--no-index',
                    str(wheel)], check=True, capture_output=True)
    out = subprocess.run([str(venv / 'bin' / 'mammo-det'), 'demo', '--help'], capture_output=True, text=True,
                         cwd=tmp_path)
    assert out.returncode == 0 and '--epochs' in out.stdout, out.stderr[-2000:]
    code = ('import os; from mammo_det.apis.configs import find_config, list_configs; p = find_config("demo"); '
            'print(len(list_configs()), os.path.isfile(p), "site-packages" in p, os.path.basename(p))')
    out = subprocess.run([str(venv / 'bin' / 'python'), '-c', code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    count, isfile, installed, name = out.stdout.split()
    assert (int(count), isfile, installed) == (len(list_configs()), 'True', 'True')
    assert name == 'faster-rcnn_r18-w16_fpn_birads_1xb4-24e_synth-mammo.py'
    # The _base_ files travel too: the installed demo config parses (its bases resolve inside site-packages).
    base = subprocess.run([str(venv / 'bin' / 'python'), '-c',
                           'import os; from mammo_det.apis.configs import package_configs_dir as d; '
                           'print(os.path.isfile(os.path.join(d(), "_base_", "datasets", '
                           '"vindr-mammo_detection.py")))'], capture_output=True, text=True)
    assert base.stdout.strip() == 'True'
