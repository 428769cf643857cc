"""The installed stack: our modules registered into mmdet, mmcv's compiled ops on CPU, the version guard."""
import importlib
import subprocess
import sys

import pytest
import torch


def _registrations():
    """(registry name, registered name, module, class name) of every registration in the package's source:
    ``@REGISTRY.register_module()`` on a class, and ``REGISTRY.register_module(name=..., module=...)`` calls."""
    import ast
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[1] / 'mammo_det'
    found = []
    for path in sorted(root.rglob('*.py')):
        if 'configs' in path.relative_to(root).parts:
            continue
        module = '.'.join(('mammo_det',) + path.relative_to(root).with_suffix('').parts)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                for dec in node.decorator_list:
                    if isinstance(dec, ast.Call) and getattr(dec.func, 'attr', '') == 'register_module':
                        found.append((dec.func.value.id, node.name, module, node.name))
            elif (isinstance(node, ast.Call) and getattr(node.func, 'attr', '') == 'register_module'
                  and node.keywords and isinstance(node.func.value, ast.Name)):
                kw = {k.arg: k.value for k in node.keywords}
                if 'name' in kw and 'module' in kw:
                    found.append((node.func.value.id, kw['name'].value, module, kw['module'].id))
    return found


def test_registry_module_registers_every_registered_class():
    """Importing mammo_det.registry (the configs' custom_imports) registers every class the package's source
    registers, each as the class defined there: a module registry.py forgets to import fails here."""
    import mammo_det.registry  # noqa: F401
    import mmdet.registry as registries

    found = _registrations()
    names = {name for _, name, _, _ in found}
    for expected in ('RoIBiradsHead', 'BiradsDetector', 'BiradsRoIHead', 'MammoDataset', 'VinDrMammoDataset',
                     'MammoMetric', 'SafeCheckpointHook', 'PositiveNegativeSampler'):
        assert expected in names, expected  # the source walk sees them
    for registry_name, name, module, cls_name in found:
        registry = getattr(registries, registry_name)
        assert registry.get(name) is getattr(importlib.import_module(module), cls_name), (registry_name, name)


def test_mmcv_compiled_ops_run_on_cpu():
    from mmcv.ops import RoIAlign, nms

    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 11., 11.], [50., 50., 60., 60.]])
    dets, keep = nms(boxes, torch.tensor([0.9, 0.8, 0.7]), iou_threshold=0.5)
    assert keep.tolist() == [0, 2]  # the second box overlaps the first by IoU 0.68
    feats = torch.arange(16, dtype=torch.float32).reshape(1, 1, 4, 4)
    roi_align = RoIAlign((2, 2), spatial_scale=1.0, sampling_ratio=1, aligned=True)
    out = roi_align(feats, torch.tensor([[0., 0., 0., 4., 4.]]))
    # aligned=True samples the centres of the four 2x2 bins: (0.5, 0.5), (2.5, 0.5), ... -> bilinear values
    torch.testing.assert_close(out.flatten(), torch.tensor([2.5, 4.5, 10.5, 12.5]))


def test_version_guard_names_what_to_install(monkeypatch):
    from mammo_det import registry

    real = registry._version
    monkeypatch.setattr(registry, '_version', lambda pkg: '2.2.0' if pkg == 'mmcv' else real(pkg))
    with pytest.raises(ImportError, match=r'mmcv>=2.0.0rc4,<2.2.0, found mmcv 2.2.0; install with `make install`'):
        registry.check_versions()
    # the hint names a page and section that exist
    import pathlib
    import re

    page, section = re.search(r'see (docs/\S+\.md) "([^"]+)"', registry.INSTALL_HINT).groups()
    text = (pathlib.Path(__file__).resolve().parents[1] / page).read_text()
    assert f'## {section}' in text.splitlines(), (page, section)


CHEAP = '''
import runpy, sys
sys.argv = {argv!r}
try:
    runpy.run_module('mammo_det', run_name='__main__')
except SystemExit as exc:
    assert exc.code in (0, None), exc.code
heavy = sorted(m for m in ('torch', 'mmdet', 'mmengine', 'mmcv') if m in sys.modules)
assert not heavy, heavy
'''


@pytest.mark.parametrize('argv', [
    ['mammo-det', '--help'], ['mammo-det', 'synth', '--help'], ['mammo-det', 'convert', '--help'],
    ['mammo-det', 'evaluate', '--help'], ['mammo-det', 'train', '--help'], ['mammo-det', 'weights', '--help']])
def test_cli_starts_without_torch_or_mmdet(argv):
    proc = subprocess.run([sys.executable, '-c', CHEAP.format(argv=argv)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_importing_the_library_and_converters_loads_no_torch(synth_root, tmp_path):
    """import mammo_det / data_converters, and a real synth + convert + evaluate, with torch never imported."""
    root, _ = synth_root
    code = f'''
import sys, json
import mammo_det, data_converters, mammo_det.vocab, mammo_det.io.preprocess
from mammo_det.cli import main
assert main(['convert', {root!r}, {str(tmp_path / 'c')!r}, '--max-size', '64', '--workers', '2']) == 0
gt = {str(tmp_path / 'c' / 'annotations' / 'instances_test.json')!r}
json.dump([], open({str(tmp_path / 'p.json')!r}, 'w'))
assert main(['evaluate', gt, {str(tmp_path / 'p.json')!r}, '--out', {str(tmp_path / 'e')!r}, '--bootstrap', '50',
             '--by', 'vendor,density']) == 0
assert main(['compare', gt, {str(tmp_path / 'p.json')!r}, {str(tmp_path / 'p.json')!r}, '--out',
             {str(tmp_path / 'k')!r}, '--bootstrap', '50']) == 0
heavy = sorted(m for m in ('torch', 'mmdet', 'mmengine', 'mmcv') if m in sys.modules)
assert not heavy, heavy
'''
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / 'e' / 'metrics.json').exists()


def test_python_dash_m_runs_the_cli():
    out = subprocess.run([sys.executable, '-m', 'mammo_det', '--help'], capture_output=True, text=True, check=True)
    for sub in ('synth', 'convert', 'evaluate', 'compare', 'train', 'test', 'infer', 'demo', 'benchmark'):
        assert sub in out.stdout
    assert importlib.util.find_spec('data_converters') is not None


THREADS_PROBE = 'MAMMO_DET_THREADS_PROBE'


def test_report_threads():
    """Writes this worker's torch threads for the test below, when it runs this one in a pytest-xdist run."""
    import os

    if THREADS_PROBE not in os.environ:
        pytest.skip('a probe for test_test_workers_do_not_oversubscribe_the_cores')
    with open(os.path.join(os.environ[THREADS_PROBE], os.environ.get('PYTEST_XDIST_WORKER', 'main')), 'w') as fh:
        fh.write(str(torch.get_num_threads()))


def test_test_workers_do_not_oversubscribe_the_cores(tmp_path):
    """Each pytest-xdist worker's torch gets its share of the cores (tests/conftest.py): two workers of two OpenMP
    threads each on 2 cores made every in-process training step 25x slower. Checked in a real two-worker run."""
    import os

    env = {k: v for k, v in os.environ.items() if k not in ('OMP_NUM_THREADS', 'PYTEST_XDIST_WORKER',
                                                              'PYTEST_XDIST_WORKER_COUNT')}
    env[THREADS_PROBE] = str(tmp_path)
    proc = subprocess.run([sys.executable, '-m', 'pytest', '-n', '2', '-p', 'no:cacheprovider', '-q',
                           f'{__file__}::test_report_threads'],
                          env=env, capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    threads = {p.name: int(p.read_text()) for p in tmp_path.iterdir()}
    assert proc.returncode == 0 and threads, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert set(threads) <= {'gw0', 'gw1'}
    assert max(threads.values()) * 2 <= max(os.cpu_count() or 1, 2), threads  # two workers' threads


@pytest.mark.parametrize('collecting', [True, False])
def test_read_json_leaves_the_garbage_collector_as_it_found_it(tmp_path, collecting):
    """read_json pauses the cyclic collector while parsing (speed); afterwards, and after a parse error, the
    collector is exactly as the caller had it."""
    import gc
    from mammo_det.fileio import read_json

    (tmp_path / 'ok.json').write_text('[{"a": [1, 2.5]}, {"b": null}]')
    (tmp_path / 'bad.json').write_text('[{"a": ')
    was = gc.isenabled()
    try:
        gc.enable() if collecting else gc.disable()
        assert read_json(str(tmp_path / 'ok.json'), 'x', ValueError) == [{'a': [1, 2.5]}, {'b': None}]
        assert gc.isenabled() is collecting
        with pytest.raises(ValueError, match='bad.json: x is not valid JSON'):
            read_json(str(tmp_path / 'bad.json'), 'x', ValueError)
        assert gc.isenabled() is collecting
    finally:
        gc.enable() if was else gc.disable()


def test_read_json_reads_what_json_reads(tmp_path):
    """The fast reader gives exactly json's values (floats to the last bit), takes the NaN and the byte-order mark
    json takes, and names the file when the bytes are not JSON."""
    import json
    import math

    import numpy as np

    from mammo_det.fileio import read_json

    rng = np.random.default_rng(0)
    dets = [dict(image_id=int(i), category_id=1, bbox=(rng.random(4) * 3000).tolist(), score=float(rng.random()),
                 birads_scores=rng.dirichlet([1, 1, 1]).tolist(), note='é') for i in range(2000)]
    (tmp_path / 'dets.json').write_text(json.dumps(dets))
    assert read_json(str(tmp_path / 'dets.json'), 'x', ValueError) == json.loads((tmp_path / 'dets.json').read_text())
    (tmp_path / 'nan.json').write_text('[{"score": NaN}]')
    assert math.isnan(read_json(str(tmp_path / 'nan.json'), 'x', ValueError)[0]['score'])
    (tmp_path / 'bom.json').write_bytes(b'\xef\xbb\xbf[1, 2]')
    assert read_json(str(tmp_path / 'bom.json'), 'x', ValueError) == [1, 2]
    (tmp_path / 'latin1.json').write_bytes(b'["\xe9"]')
    with pytest.raises(ValueError, match='latin1.json: x is not valid JSON'):
        read_json(str(tmp_path / 'latin1.json'), 'x', ValueError)
