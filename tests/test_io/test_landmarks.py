"""Landmarks on the synthetic releases' two views (whose geometry is known) and their failure reasons."""
import numpy as np
import pytest

from data_converters.synth.vindr import plan_dataset, render_pixels, view_geometry
from mammo_det.io.landmarks import Landmarks, chest_wall_angle, find_landmarks, nipple_depth


@pytest.fixture(scope='module')
def views():
    """Eight breasts (CC and MLO), each vendor profile and side, at 15 % of the real size."""
    plans = plan_dataset(4, seed=7, scale=0.15, positive_rate=0.5, distractors=0.5)
    return [(im, find_landmarks((render_pixels(im) * 65535).astype(np.uint16), im.view, im.laterality))
            for im in plans]


def test_nipple_within_3_mm_and_chest_wall_within_3_degrees(views):
    errors, angles = [], []
    for im, lm in views:
        truth = view_geometry(im)
        assert lm.chest_wall_side == ('left' if im.laterality == 'L' else 'right')
        assert lm.nipple is not None and lm.chest_wall is not None, lm.reasons
        errors.append(np.hypot(lm.nipple[0] - truth.tip[0], lm.nipple[1] - truth.tip[1]) * im.spacing)
        angles.append(abs(chest_wall_angle(lm) - chest_wall_angle(Landmarks(None, None, truth.chest_wall, None))))
    assert np.median(errors) <= 3.0 and max(errors) < 6.0, errors
    assert np.median(angles) <= 3.0, angles


def test_a_lesion_keeps_its_nipple_depth_across_views(views):
    """The synthetic lesions are placed by depth: measured from the found landmarks, a lesion's CC and MLO depths
    agree within the planted scatter (3 mm sd) plus the landmarks' error."""
    by_breast = {}
    for im, lm in views:
        by_breast.setdefault((im.study_id, im.laterality), {})[im.view] = (im, lm)
    diffs = []
    for pair in by_breast.values():
        depth = {}
        for view, (im, lm) in pair.items():
            for f in im.findings:
                if f.lesion_id and f.categories[0] not in ('Skin Thickening', 'Skin Retraction', 'Nipple Retraction'):
                    c = [[(f.box[0] + f.box[2]) / 2, (f.box[1] + f.box[3]) / 2]]
                    depth.setdefault(f.lesion_id, {})[view] = float(nipple_depth(c, lm, [im.spacing] * 2)[0])
        diffs += [abs(d['CC'] - d['MLO']) for d in depth.values() if len(d) == 2]
    assert diffs and np.median(diffs) < 8.0, diffs


def test_what_cannot_be_found_is_none_with_its_reason():
    blank = np.zeros((300, 200), np.uint8)
    lm = find_landmarks(blank, 'CC')
    assert lm.contour is None and lm.nipple is None and 'no breast region' in lm.reasons['nipple']
    im = plan_dataset(1, seed=2, scale=0.12)[0]  # a CC view: no pectoral muscle drawn
    assert im.view == 'CC'
    img = (render_pixels(im) * 255).astype(np.uint8)
    img[:, :] = np.where(img > 20, 120, 0).astype(np.uint8)  # a flat breast: no edge anywhere inside
    lm = find_landmarks(img, 'MLO', im.laterality)  # read as an MLO view, its muscle is not there
    assert lm.chest_wall is None and lm.nipple is None
    assert 'chest_wall' in lm.reasons and 'no chest-wall line' in lm.reasons['nipple']
    assert lm.contour is not None  # the breast itself is found
    assert Landmarks.from_dict(lm.to_dict()).reasons == lm.reasons
