import numpy as np

from mammo_det.io import geometry as geo


def test_clip_boxes_x_on_width_y_on_height():
    out = geo.clip_boxes([[-26.8, -5, 2841, 3600]], width=2800, height=3518)
    np.testing.assert_allclose(out, [[0, 0, 2800, 3518]])


def test_round_trip_through_crop_and_resize():
    t = geo.ImageTransform(2800, 3518, (100, 200, 1500, 3400), 512, 1170)
    boxes = np.array([[300.0, 500.0, 700.0, 900.0], [100.0, 200.0, 1500.0, 3400.0]])
    conv = geo.to_converted(boxes, t)
    np.testing.assert_allclose(conv[1], [0, 0, 512, 1170])
    np.testing.assert_allclose(geo.to_original(conv, t), boxes, atol=1e-9)
    sx, sy = t.scale
    np.testing.assert_allclose(conv[0], [(300 - 100) * sx, (500 - 200) * sy, (700 - 100) * sx, (900 - 200) * sy])
    assert geo.ImageTransform.from_dict(t.to_dict()) == t


def test_breast_bbox_finds_largest_bright_region_and_ignores_marker():
    img = np.zeros((400, 300), np.uint8)
    img[50:350, 0:180] = 200  # breast on the left
    img[10:20, 270:290] = 255  # a small marker
    x0, y0, x1, y1 = geo.breast_bbox(img, stride=4, margin=0)
    assert x0 == 0 and abs(y0 - 50) <= 4
    assert abs(x1 - 180) <= 4 and abs(y1 - 350) <= 4


def test_crop_grows_to_include_every_box():
    crop = geo.grow_to_include((100, 100, 200, 200), np.array([[50, 150, 120, 260], [190, 90, 330, 120]]),
                               300, 250)
    assert crop == (50, 90, 300, 250)


def test_output_size_never_upscales():
    assert geo.output_size(2800, 3518, 2048) == (1630, 2048)
    assert geo.output_size(200, 100, 2048) == (200, 100)
    assert geo.output_size(200, 100, None) == (200, 100)


def test_crop_and_resize_area():
    img = np.arange(16, dtype=np.uint16).reshape(4, 4) * 2
    t = geo.ImageTransform(4, 4, (0, 0, 4, 4), 2, 2)
    np.testing.assert_array_equal(geo.crop_and_resize(img, t), [[5, 9], [21, 25]])  # 2x2 block means
    t = geo.ImageTransform(4, 4, (2, 0, 4, 4), 1, 2)  # crop the right half first
    np.testing.assert_array_equal(geo.crop_and_resize(img, t), [[9], [25]])
