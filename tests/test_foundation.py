"""The installed stack: our modules registered into mmdet, mmcv's compiled ops on CPU, the version guard."""
import importlib
import subprocess
import sys

import pytest
import torch


def test_import_registers_every_public_module():
    import mammo_det  # noqa: F401
    from mmdet.registry import DATA_SAMPLERS, DATASETS, HOOKS, METRICS, MODEL_WRAPPERS, MODELS, TASK_UTILS, TRANSFORMS

    for registry, names in ((MODELS, ['BiradsBBoxHead', 'BiradsRoIHead', 'CascadeBiradsRoIHead']),
                            (DATASETS, ['VinDrMammoDataset']),
                            (TRANSFORMS, ['LoadMammogram', 'LoadBiradsAnnotations', 'PackMammoInputs']),
                            (METRICS, ['MammoMetric']), (HOOKS, ['SafeCheckpointHook']),
                            (TASK_UTILS, ['Fp32BboxOverlaps2D']), (DATA_SAMPLERS, ['PositiveNegativeSampler']),
                            (MODEL_WRAPPERS, ['CPUSafeDistributedDataParallel'])):
        for name in names:
            assert registry.get(name) is not None, name


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
    import mammo_det

    real = mammo_det._version
    monkeypatch.setattr(mammo_det, '_version', lambda pkg: '2.2.0' if pkg == 'mmcv' else real(pkg))
    with pytest.raises(ImportError, match=r'mmcv>=2.0.0rc4,<2.2.0, found mmcv 2.2.0; install with `make install`'):
        mammo_det._check_versions()


def test_python_dash_m_runs_the_cli():
    out = subprocess.run([sys.executable, '-m', 'mammo_det', '--help'], capture_output=True, text=True, check=True)
    for sub in ('synth', 'convert', 'evaluate', 'train', 'test', 'infer', 'demo', 'benchmark'):
        assert sub in out.stdout
    assert importlib.util.find_spec('data_converters') is not None
