"""Shared fixtures: synthetic VinDr-Mammo data written once per session (tiny images), and the demo model."""
import fcntl
import json
import os

import pytest


@pytest.fixture(scope='session')
def synth_root(tmp_path_factory):
    """A synthetic release: 12 studies (48 images) at 8 % of the real size."""
    from data_converters.synth.vindr import write_dataset

    root = str(tmp_path_factory.mktemp('vindr'))
    images = write_dataset(root, studies=12, seed=3, scale=0.08, positive_rate=0.5, progress=False)
    return root, images


@pytest.fixture(scope='session')
def converted(synth_root, tmp_path_factory):
    """synth_root converted to COCO with the breast crop and a small max size."""
    from data_converters.core import ConvertOptions
    from data_converters.formats import convert

    root, _ = synth_root
    out = str(tmp_path_factory.mktemp('coco'))
    report = convert(root, out, ConvertOptions(max_size=160, workers=1, progress=False, val_fraction=0.25))
    return out, report


def pytest_configure(config):
    # Each pytest-xdist worker (and every tool it starts) gets its share of the cores. Two workers with two OpenMP
    # threads each on 2 cores spin against each other: measured, a training step took 25x longer. The controller
    # knows the worker count (-n) before it starts them, and they inherit its environment; a worker reads its own.
    if hasattr(config, 'workerinput'):
        workers = int(config.workerinput['workercount'])
    else:
        n = getattr(config.option, 'numprocesses', None)
        workers = n if isinstance(n, int) and n > 0 else (os.cpu_count() or 1) if n else 1
    os.environ.setdefault('OMP_NUM_THREADS', str(max(1, min(2, (os.cpu_count() or 1) // workers))))


# The demo's own schedule, as `make demo` runs it: the family configs start from its backbone and neck, and their
# BI-RADS branches (which do not train those) learned less on a half-trained one (FCOS never answered BI-RADS 5).
DEMO_TEST_EPOCHS = 24


@pytest.fixture(scope='session')
def demo(tmp_path_factory):
    """The demo pipeline as `make demo` runs it (synthetic release, conversion, training, test, report), once per
    run: with pytest-xdist the workers share it, the first that needs it trains it while the others wait."""
    from mammo_det.apis.demo import run_demo

    root = tmp_path_factory.getbasetemp()
    if os.environ.get('PYTEST_XDIST_WORKER'):
        root = root.parent  # the run's folder, above each worker's
    out = root / 'demo'
    with open(root / 'demo.lock', 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (out / 'report.md').exists():  # its last step: another worker ran it
            return str(out), json.loads((out / 'eval' / 'metrics.json').read_text())
        return str(out), run_demo(str(out), epochs=DEMO_TEST_EPOCHS)
