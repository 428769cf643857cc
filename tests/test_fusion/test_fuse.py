"""Two-view linking and rescoring on breasts whose landmarks are given: partners by nipple depth, breasts with one
view untouched, fused output that evaluates, a fit that rewards a partner, and the command line."""
import json
import subprocess
import sys

import numpy as np
import pytest

from mammo_det.evaluation import evaluate, validate_detections
from mammo_det.fusion import FusionError, fit_fuser, fuse_predictions
from mammo_det.fusion.fuse import FEATURES, link_features

SPACING = [0.5, 0.5]  # mm per pixel


def _image(id_, study, lat, view):
    # chest wall on the left edge (x = 0); the nipple at x = 160 px = 80 mm deep, mid-height
    lm = dict(chest_wall_side='left', contour=[[0, 0], [160, 100], [0, 200]], chest_wall=[[0, 0], [0, 200]],
              nipple=[160, 100], reasons={})
    if view == 'MLO':  # a pectoral line through (40, 0) and (0, 80); the nipple 80 mm from it as well
        d = np.array([80.0, 40.0]) / np.hypot(80, 40)  # the line's normal
        nip = np.array([40.0, 0.0]) + d * 160
        lm = dict(lm, chest_wall=[[40, 0], [0, 80]], nipple=[float(nip[0]), float(nip[1])])
    return dict(id=id_, file_name=f'{id_}.png', width=200, height=200, study_id=study, laterality=lat,
                view_position=view, pixel_spacing=SPACING, landmarks=lm)


def _at_depth(image, depth_mm, score, cat=1):
    """A 10 x 10 px detection whose centre lies ``depth_mm`` from the nipple along the nipple axis."""
    lm = image['landmarks']
    nip = np.array(lm['nipple'])
    (x0, y0), (x1, y1) = lm['chest_wall']
    normal = np.array([y1 - y0, -(x1 - x0)], float)
    normal /= np.linalg.norm(normal)
    if normal[0] > 0:
        normal = -normal
    c = nip - normal * depth_mm / SPACING[0] * -1
    return dict(image_id=image['id'], category_id=cat, bbox=[float(c[0] - 5), float(c[1] - 5), 10.0, 10.0],
                score=score)


def _gt(images, anns=()):
    return dict(images=images, annotations=list(anns), categories=[dict(id=1, name='mass'), dict(id=2, name='calc')])


def test_a_pair_links_when_depths_agree_and_not_out_of_tolerance():
    cc, mlo = _image(1, 's', 'L', 'CC'), _image(2, 's', 'L', 'MLO')
    gt = _gt([cc, mlo])
    near = [_at_depth(cc, 40, 0.8), _at_depth(mlo, 43, 0.6)]
    links = link_features(gt, near)
    assert links.eligible.all() and links.partner.tolist() == [1, 0]
    assert links.depth == pytest.approx([40, 43], abs=0.01)
    assert links.features[0, FEATURES.index('partner')] == pytest.approx(0.6 * np.exp(-0.5 * (3 / 8) ** 2))
    far = [_at_depth(cc, 40, 0.8), _at_depth(mlo, 75, 0.6)]  # 35 mm apart: beyond the 30 mm band
    assert link_features(gt, far).partner.tolist() == [-1, -1]
    other = [_at_depth(cc, 40, 0.8), _at_depth(mlo, 41, 0.6, cat=2)]  # another category: no partner
    assert link_features(gt, other).partner.tolist() == [-1, -1]


def test_one_view_breasts_pass_through_and_fused_output_evaluates():
    cc, mlo, lone = _image(1, 's', 'L', 'CC'), _image(2, 's', 'L', 'MLO'), _image(3, 't', 'R', 'CC')
    anns = [dict(id=1, image_id=1, category_id=1, bbox=_at_depth(cc, 40, 0)['bbox'], area=100, iscrowd=0),
            dict(id=2, image_id=2, category_id=1, bbox=_at_depth(mlo, 42, 0)['bbox'], area=100, iscrowd=0)]
    gt = _gt([cc, mlo, lone], anns)
    dets = [_at_depth(cc, 40, 0.7), _at_depth(mlo, 42, 0.5), _at_depth(cc, 20, 0.6), _at_depth(lone, 30, 0.55)]
    fuser = dict(format='mammo-det two-view fuser 1', features=list(FEATURES), weights=[-1.0, 1.0, 4.0, -1.0],
                 sigma_mm=8.0, band_mm=30.0, id='t')
    fused, stats = fuse_predictions(gt, dets, fuser)
    assert fused[3] == dets[3]  # the breast with one view: unchanged
    assert stats['rescored'] == 3 and stats['linked'] == 3  # the FP at 20 mm: a partner 22 mm off, weight 0.02
    assert fused[2]['fusion']['partner_strength'] == pytest.approx(0.5 * np.exp(-0.5 * (22 / 8) ** 2), rel=1e-3)
    assert fused[0]['score'] > fused[2]['score']  # the partnered detection now outranks the lone FP
    assert fused[0]['score_single'] == 0.7 and fused[0]['fusion']['mismatch_mm'] == pytest.approx(2.0, abs=0.01)
    validate_detections(json.loads(json.dumps(fused)), gt, 'fused')
    m = evaluate(gt, fused)
    assert m['num_detections'] == 4 and m['per_category']['mass']['AP50'] == pytest.approx(1.0)


def test_fit_rewards_a_partner_and_rejects_inputs_without_landmarks():
    rng = np.random.default_rng(0)
    images, anns, dets = [], [], []
    for s in range(30):
        cc, mlo = _image(2 * s + 1, f's{s}', 'L', 'CC'), _image(2 * s + 2, f's{s}', 'L', 'MLO')
        images += [cc, mlo]
        depth = rng.uniform(20, 60)
        for im, d in ((cc, depth), (mlo, depth + rng.normal(0, 3))):
            det = _at_depth(im, d, float(rng.uniform(0.3, 0.9)))
            anns.append(dict(id=len(anns) + 1, image_id=im['id'], category_id=1, bbox=det['bbox'], area=100,
                             iscrowd=0))
            dets.append(det)
            dets.append(_at_depth(im, rng.uniform(10, 70), float(rng.uniform(0.3, 0.9))))  # a one-view FP
    fuser = fit_fuser(_gt(images, anns), dets)
    w = dict(zip(FEATURES, fuser['weights']))
    assert w['partner'] > 0 and w['score_logit'] >= 0
    assert fuser['fit']['detections'] == len(dets) and fuser['fit']['breasts'] == 30
    bare = _gt([dict(im, landmarks=None) for im in images], anns)
    with pytest.raises(FusionError, match='too few'):
        fit_fuser(bare, dets)


def test_fuse_cli_fits_applies_and_records_the_fuser(tmp_path):
    rng = np.random.default_rng(1)
    images, anns, dets = [], [], []
    for s in range(12):
        cc, mlo = _image(2 * s + 1, f's{s}', 'R', 'CC'), _image(2 * s + 2, f's{s}', 'R', 'MLO')
        images += [cc, mlo]
        depth = rng.uniform(20, 60)
        for im in (cc, mlo):
            det = _at_depth(im, depth, float(rng.uniform(0.4, 0.9)))
            anns.append(dict(id=len(anns) + 1, image_id=im['id'], category_id=1, bbox=det['bbox'], area=100,
                             iscrowd=0))
            dets += [det, _at_depth(im, rng.uniform(10, 70), float(rng.uniform(0.4, 0.9)))]
    (tmp_path / 'gt.json').write_text(json.dumps(_gt(images, anns)))
    (tmp_path / 'dets.json').write_text(json.dumps(dets))
    run = lambda *a: subprocess.run([sys.executable, '-m', 'mammo_det', 'fuse', str(tmp_path / 'gt.json'),  # noqa
                                     str(tmp_path / 'dets.json'), *a], capture_output=True, text=True, timeout=300)
    p = run('--fit', '--out', str(tmp_path / 'fuser.json'))
    assert p.returncode == 0, p.stderr
    p = run('--fuser', str(tmp_path / 'fuser.json'), '--out', str(tmp_path / 'fused.json'))
    assert p.returncode == 0, p.stderr
    fused = json.loads((tmp_path / 'fused.json').read_text())
    meta = json.loads((tmp_path / 'fused.json.fusion.json').read_text())
    assert len(fused) == len(dets) and meta['fuser']['weights'] == json.loads((tmp_path / 'fuser.json').read_text())[
        'weights']
    assert all(d['fusion']['fuser'] == meta['fuser']['id'] for d in fused)
    p = run('--out', str(tmp_path / 'x.json'))
    assert p.returncode == 2 and 'give --fuser' in p.stderr
