"""The CPU-only parts of tools/gpu_check.sh: it refuses to start without a GPU, and its summary is built from what
the benchmark and pytest really write (the benchmark's CPU part runs here at a small scale)."""
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_gpu_check_without_a_gpu_stops_before_installing(tmp_path):
    fake = tmp_path / 'bin'
    fake.mkdir()
    (fake / 'nvidia-smi').write_text('#!/bin/sh\necho "NVIDIA-SMI has failed" >&2\nexit 9\n')
    (fake / 'nvidia-smi').chmod(0o755)
    env = dict(os.environ, PATH=f'{fake}{os.pathsep}{os.environ["PATH"]}')
    proc = subprocess.run(['bash', 'tools/gpu_check.sh', str(tmp_path / 'out')], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and 'no GPU visible' in proc.stdout
    assert not (tmp_path / 'out' / 'install.log').exists()


@pytest.mark.slow
def test_summary_from_a_real_cpu_benchmark_and_junit_report(tmp_path):
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'gpu.txt').write_text('NVIDIA H200, 570.86, 143771 MiB\n')
    bench = subprocess.run([sys.executable, 'tools/benchmarks/train_speed.py', '--images', '4', '--scale', '256',
                            '--json', str(out / 'train_speed.json')], cwd=REPO, capture_output=True, text=True,
                           timeout=900, env=dict(os.environ, CUDA_VISIBLE_DEVICES=''))
    assert bench.returncode == 0, bench.stderr[-3000:]
    assert 'lean' in bench.stdout and 'no GPU visible' in bench.stdout
    probe = tmp_path / 'test_probe.py'
    probe.write_text('import pytest\n\ndef test_ok():\n    pass\n\ndef test_bad():\n    assert False\n\n'
                     '@pytest.mark.skip\ndef test_skipped():\n    pass\n')
    subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', str(probe),
                    f'--junitxml={out / "gpu_tests.xml"}'], cwd=tmp_path, capture_output=True)
    proc = subprocess.run([sys.executable, 'tools/gpu_summary.py', str(out), '--install-rc', '0', '--install-seconds',
                           '421', '--tests-rc', '1', '--bench-rc', '0', '--python', sys.executable],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 1  # a failed test makes the whole check fail
    summary = json.load(open(out / 'gpu_check.json'))
    assert summary['gpu'].startswith('NVIDIA H200')
    import torch
    from mmcv.ops import get_compiling_cuda_version

    v = summary['versions']  # what the python it was given has: this one's own answers
    assert (v['torch'], v['torch_cuda'], v['mmcv_compiled_cuda']) == (torch.__version__, torch.version.cuda,
                                                                      get_compiling_cuda_version())
    tests = summary['checks']['gpu_tests']
    assert (tests['tests'], tests['failures'], tests['skipped']) == (3, 1, 1)
    assert tests['failed'] == ['test_probe::test_bad']
    assert summary['checks']['install'] == dict(ok=True, rc=0, seconds=421)
    bench_json = json.load(open(out / 'train_speed.json'))
    assert summary['train_speed'] == bench_json
    assert set(bench_json['loader']) == {'8bit_1w', '8bit_2w', '16bit_1w', '16bit_2w'}
    md = (out / 'gpu_check.md').read_text()
    assert 'NVIDIA H200' in md and 'test_probe::test_bad' in md and '8bit_2w' in md
    lean8 = bench_json['loader']['8bit_1w']
    assert lean8['lean']['bytes'] * 4 <= lean8['old']['bytes']
