"""Shared fixtures: synthetic VinDr-Mammo data written once per session (tiny images)."""
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
    os.environ.setdefault('OMP_NUM_THREADS', '2')
