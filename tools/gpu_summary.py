"""The summary of tools/gpu_check.sh: gpu_check.json and gpu_check.md from what its steps left in OUT.

    python tools/gpu_summary.py OUT --install-rc 0 --install-seconds 420 --tests-rc 0 --bench-rc 0 [--python PY]

Reads OUT/gpu.txt (nvidia-smi), OUT/gpu_tests.xml (pytest's JUnit report), OUT/train_speed.json (the benchmark) and
asks PY for the versions and mmcv's compiled CUDA version. A missing piece is reported as missing, not guessed.
"""
import argparse
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '..')))

VERSIONS = '''
import json, torch
out = dict(torch=torch.__version__, torch_cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version())
try:
    import mmcv, mmdet, mmengine
    from mmcv.ops import get_compiling_cuda_version
    out.update(mmcv=mmcv.__version__, mmcv_compiled_cuda=get_compiling_cuda_version(), mmdet=mmdet.__version__,
               mmengine=mmengine.__version__)
except Exception as exc:
    out['import_error'] = f'{type(exc).__name__}: {exc}'
print(json.dumps(out))
'''


def versions(python: str) -> dict:
    proc = subprocess.run([python, '-c', VERSIONS], capture_output=True, text=True)
    if proc.returncode:
        return dict(error=(proc.stderr.strip().splitlines() or ['no output'])[-1])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def junit(path: str) -> dict:
    """Counts and the failed tests' names of a pytest JUnit XML report."""
    if not os.path.exists(path):
        return dict(missing=True)
    root = ET.parse(path).getroot()
    suite = root if root.tag == 'testsuite' else root.find('testsuite')
    failed = [f"{c.get('classname')}::{c.get('name')}" for c in suite.iter('testcase')
              if c.find('failure') is not None or c.find('error') is not None]
    return dict(tests=int(suite.get('tests', 0)), failures=int(suite.get('failures', 0)),
                errors=int(suite.get('errors', 0)), skipped=int(suite.get('skipped', 0)), failed=failed)


def summarize(out: str, install_rc: int, install_s: int, tests_rc: int, bench_rc: int, python: str) -> dict:
    gpu = open(os.path.join(out, 'gpu.txt')).read().strip() if os.path.exists(os.path.join(out, 'gpu.txt')) else None
    bench_path = os.path.join(out, 'train_speed.json')
    bench = json.load(open(bench_path)) if os.path.exists(bench_path) else None
    checks = dict(install=dict(ok=install_rc == 0, rc=install_rc, seconds=install_s),
                  gpu_tests=dict(ok=tests_rc == 0, rc=tests_rc, **junit(os.path.join(out, 'gpu_tests.xml'))),
                  benchmark=dict(ok=bench_rc == 0 and bench is not None, rc=bench_rc))
    return dict(gpu=gpu, versions=versions(python) if os.path.exists(python) else dict(error=f'no {python}'),
                checks=checks, ok=all(c['ok'] for c in checks.values()), train_speed=bench)


def markdown(s: dict) -> str:
    from mammo_det.evaluation.report import format_rows

    v = s['versions']
    lines = ['# GPU check', '', f"GPU: {s['gpu'] or 'unknown'}", '',
             f"torch {v.get('torch')} (CUDA {v.get('torch_cuda')}, cuDNN {v.get('cudnn')}), mmcv {v.get('mmcv')} "
             f"(compiled CUDA {v.get('mmcv_compiled_cuda')}), mmengine {v.get('mmengine')}, mmdet {v.get('mmdet')}",
             '', format_rows([dict(check=k, ok='yes' if c['ok'] else 'NO', rc=c['rc'],
                                   detail=c.get('seconds') if k == 'install' else
                                   f"{c.get('tests', '?')} tests, {c.get('failures', '?')} failed, "
                                   f"{c.get('skipped', '?')} skipped" if k == 'gpu_tests' else '')
                              for k, c in s['checks'].items()])]
    failed = s['checks']['gpu_tests'].get('failed')
    if failed:
        lines += ['', 'Failed: ' + ', '.join(failed)]
    b = s.get('train_speed')
    if b:
        rows = [dict(loader=k, **{f'{p} img/s/worker': r[p]['img_per_s_per_worker'] for p in ('old', 'lean')},
                     **{f'{p} MB': r[p]['bytes'] / 1e6 for p in ('old', 'lean')}) for k, r in b['loader'].items()]
        lines += ['', f"## Loaders at long side {b['scale']}", '', format_rows(rows, digits=1)]
        gpu_rows = [dict(config=k, **{f'{m} img/s': r[m]['img_per_s'] for m in ('fp32', 'amp')},
                         **{f'{m} peak alloc/reserved GiB': f"{r[m]['peak_allocated_gib']:.1f}/"
                            f"{r[m]['peak_reserved_gib']:.1f}" for m in ('fp32', 'amp')})
                    for k, r in b['gpu'].items() if isinstance(r, dict)]
        if gpu_rows:
            lines += ['', '## Training steps (2 images, after warm-up)', '', format_rows(gpu_rows, digits=1)]
        if 'data_time_share' in b['gpu']:
            lines += ['', f"Data time in one real epoch: {b['gpu']['data_time_share']:.1%} of the iteration time."]
    return '\n'.join(lines) + '\n'


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('out')
    ap.add_argument('--install-rc', type=int, required=True)
    ap.add_argument('--install-seconds', type=int, default=0)
    ap.add_argument('--tests-rc', type=int, required=True)
    ap.add_argument('--bench-rc', type=int, required=True)
    ap.add_argument('--python', default=sys.executable)
    args = ap.parse_args()
    from mammo_det.fileio import write_json, write_text

    s = summarize(args.out, args.install_rc, args.install_seconds, args.tests_rc, args.bench_rc, args.python)
    write_json(os.path.join(args.out, 'gpu_check.json'), s, indent=1)
    write_text(os.path.join(args.out, 'gpu_check.md'), markdown(s))
    print(markdown(s))
    return 0 if s['ok'] else 1


if __name__ == '__main__':
    sys.exit(main())
