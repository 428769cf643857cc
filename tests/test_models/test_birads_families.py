"""The one BI-RADS branch of every detector that is not an R-CNN (RoIBiradsHead, through BiradsDetector) and the
R-CNN tower, on batches built by hand: the loss equals the cross-entropy of the boxes' targets computed another way;
the strides are read off the feature maps; switched off (or on) the detections are the MMDetection model's own; every
head of a wrapped model gets the dataset's class count."""
import pytest
import torch
import torch.nn.functional as F
from mmdet.structures import DetDataSample
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData

import mammo_det.registry  # noqa: F401
from mammo_det.models.birads import NUM_BIRADS

IMG = 64


def _sample(boxes, labels, birads):
    s = DetDataSample(metainfo=dict(img_shape=(IMG, IMG), ori_shape=(IMG, IMG), pad_shape=(IMG, IMG),
                                    scale_factor=(1.0, 1.0), batch_input_shape=(IMG, IMG)))
    s.gt_instances = InstanceData(bboxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                                  labels=torch.tensor(labels, dtype=torch.long),
                                  birads=torch.tensor(birads, dtype=torch.long))
    return s


def _batch():
    """Two images: boxes with BI-RADS 3 and 5 and one without (-1); an image with one BI-RADS 4 box."""
    return [_sample([[4, 4, 30, 30], [34, 30, 60, 58], [10, 40, 26, 56]], [0, 1, 1], [3, 5, -1]),
            _sample([[20, 10, 50, 44]], [0], [4])]


def _features():
    torch.manual_seed(1)
    return (torch.randn(2, 8, IMG // 8, IMG // 8), torch.randn(2, 8, IMG // 16, IMG // 16))


# --- any architecture ----------------------------------------------------------------------------------------------

def test_roi_birads_head_loss_on_ground_truth_boxes():
    """Without jitter the loss is the cross-entropy of the logits of the boxes with a BI-RADS, pooled in them."""
    from mmdet.registry import MODELS

    torch.manual_seed(0)
    head = MODELS.build(dict(type='RoIBiradsHead', in_channels=8, featmap_strides=[8, 16], roi_size=3,
                             fc_channels=16, jitter=0))
    x = _features()
    batch = _batch()
    losses = head.loss(x, batch)
    boxes = [s.gt_instances.bboxes[s.gt_instances.birads >= 3] for s in batch]
    logits = head(x, boxes)
    expected = F.cross_entropy(logits, torch.tensor([0, 2, 1]))
    assert losses['loss_birads'].item() == pytest.approx(expected.item(), rel=1e-6)
    head.jitter = 3
    assert len(head.jittered(boxes[0])) == 4 * len(boxes[0])


def test_roi_birads_head_reads_the_strides_off_the_maps():
    """Without featmap_strides the head pools as one given the true strides (same weights, same logits), every
    level used; strides come from the padded input's height, rounded to a power of 2."""
    from mmdet.registry import MODELS

    from mammo_det.models.birads_head import map_strides

    torch.manual_seed(0)
    given = MODELS.build(dict(type='RoIBiradsHead', in_channels=8, featmap_strides=[8, 16], roi_size=3,
                              fc_channels=16, jitter=0))
    read = MODELS.build(dict(type='RoIBiradsHead', in_channels=8, roi_size=3, fc_channels=16, jitter=0))
    read.load_state_dict(given.state_dict())
    x = _features()
    boxes = [s.gt_instances.bboxes for s in _batch()]
    torch.testing.assert_close(read(x, boxes, (IMG, IMG)), given(x, boxes))
    # the level matters: read as strides 4 and 8, the same maps give other logits
    assert not torch.allclose(read(x, boxes, (IMG // 2, IMG // 2)), given(x, boxes))
    assert map_strides([torch.zeros(1, 1, 13, 9), torch.zeros(1, 1, 4, 3)], (100, 70)) == (8, 32)
    loss = read.loss(x, _batch())['loss_birads']  # the input shape from the samples' batch_input_shape
    assert loss.item() == pytest.approx(given.loss(x, _batch())['loss_birads'].item(), rel=1e-6)
    with pytest.raises(ValueError, match='input shape'):
        read(x, boxes)


def test_roi_birads_head_gives_degenerate_boxes_a_birads():
    """An inverted or NaN box (a barely trained zoo detector keeps some) is pooled as what it collapses to, not an
    error: every kept box carries BI-RADS logits; a proper box's logits do not change."""
    from mmdet.registry import MODELS

    torch.manual_seed(0)
    head = MODELS.build(dict(type='RoIBiradsHead', in_channels=8, featmap_strides=[8, 16], roi_size=3,
                             fc_channels=16, jitter=0))
    head.eval()
    x = _features()
    good = torch.tensor([[4., 4., 30., 30.]])
    bad = torch.tensor([[20., 20., 10., 12.], [float('nan'), 5., 9., 9.]])
    with torch.no_grad():
        both = head(x, [torch.cat([good, bad]), good])
        alone = head(x, [good, good])
    assert both.shape == (4, NUM_BIRADS) and torch.isfinite(both).all()
    torch.testing.assert_close(both[[0, 3]], alone)
    torch.testing.assert_close(both[1], head(x, [torch.tensor([[20., 20., 20., 20.]]), good])[0])

def _tiny_retinanet():
    """A RetinaNet small enough to run on a 64-pixel image in a test (a zoo model's structure, random weights)."""
    head = dict(type='RetinaHead', num_classes=2, in_channels=8, feat_channels=8, stacked_convs=1,
                anchor_generator=dict(type='AnchorGenerator', octave_base_scale=4, scales_per_octave=1,
                                      ratios=[0.5, 1.0, 2.0], strides=[8, 16]))
    return dict(
        type='RetinaNet',
        data_preprocessor=dict(type='DetDataPreprocessor', mean=[0.], std=[1.], bgr_to_rgb=False, pad_size_divisor=32),
        backbone=dict(type='ResNet', depth=18, in_channels=1, base_channels=8, num_stages=3, out_indices=(1, 2),
                      strides=(1, 2, 2), dilations=(1, 1, 1),
                      norm_cfg=dict(type='BN'), init_cfg=None),
        neck=dict(type='FPN', in_channels=[16, 32], out_channels=8, num_outs=2),
        bbox_head=head,
        test_cfg=dict(nms_pre=100, min_bbox_size=0, score_thr=0.0, nms=dict(type='nms', iou_threshold=0.5),
                      max_per_img=20))


@pytest.mark.parametrize('with_birads', [True, False])
def test_wrapper_switched_off_is_the_zoo_detector_and_on_keeps_its_boxes(with_birads):
    """BiradsDetector(with_birads=False) has no BI-RADS weights and predicts what the wrapped MMDetection model
    predicts with the same weights; switched on, the boxes are the same and each carries probabilities of 3/4/5."""
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope

    init_default_scope('mmdet')  # the data preprocessors are built by name, as in a config
    zoo = _tiny_retinanet()
    torch.manual_seed(0)
    wrapper = MODELS.build(dict(type='BiradsDetector', detector=zoo, with_birads=with_birads,
                                data_preprocessor=dict(type='DetDataPreprocessor')))  # its one-channel model's
    plain = MODELS.build(ConfigDict(zoo))  # as a config file gives it: heads read test_cfg by attribute
    missing = plain.load_state_dict({k[len('detector.'):]: v for k, v in wrapper.state_dict().items()
                                     if k.startswith('detector.')}, strict=True)
    assert not missing.missing_keys
    assert any(k.startswith('birads_head.') for k in wrapper.state_dict()) == with_birads
    wrapper.eval()
    plain.eval()
    torch.manual_seed(2)
    data = dict(inputs=[torch.randint(0, 255, (1, IMG, IMG), dtype=torch.uint8)], data_samples=[_batch()[0]])
    with torch.no_grad():
        ours = wrapper.test_step(data)[0].pred_instances
        theirs = plain.test_step(data)[0].pred_instances
    assert len(theirs) > 0
    for key in ('bboxes', 'scores', 'labels'):
        torch.testing.assert_close(ours[key], theirs[key])
    assert ('birads_scores' in ours) == with_birads
    if with_birads:
        torch.testing.assert_close(ours.birads_scores.sum(1), torch.ones(len(ours)))
        assert torch.equal(ours.birads, ours.birads_scores.argmax(1) + 3)


# --- what the branch trains ----------------------------------------------------------------------------------------

def _birads_loss_of_features(family: str, detach: bool) -> tuple:
    """(features the family's BI-RADS branch reads, requiring grad; its BI-RADS loss on them)."""
    from mmdet.registry import MODELS

    batch = _batch()
    if family == 'roi':
        head = MODELS.build(dict(type='RoIBiradsHead', in_channels=8, featmap_strides=[8, 16], roi_size=3,
                                 fc_channels=16, jitter=0, detach_features=detach))
        x = tuple(f.requires_grad_() for f in _features())
        return x, head.loss(x, batch)['loss_birads']
    head = MODELS.build(dict(type='BiradsBBoxHead', in_channels=8, roi_feat_size=3, fc_out_channels=16,
                             num_classes=2, detach_features=detach))
    roi_feats = torch.randn(5, 8, 3, 3, requires_grad=True)
    return (roi_feats,), head.birads_loss(head.forward_birads(roi_feats), torch.tensor([0, 2, -1, 1, -1]))


@pytest.mark.parametrize('family', ['roi', 'two-stage'])
def test_birads_loss_trains_the_branch_alone_unless_asked(family):
    """By default the BI-RADS loss gives no gradient to the features it reads (the detector learns as it would
    without the branch: measured on the demo families, sharing them cost detection mAP); with
    ``detach_features=False`` it does."""
    for detach in (True, False):
        torch.manual_seed(0)
        feats, loss = _birads_loss_of_features(family, detach)
        assert loss.item() > 0
        loss.backward()
        grads = [f.grad for f in feats]
        if detach:
            assert all(g is None for g in grads), family
        else:
            assert any(g is not None and g.abs().sum() > 0 for g in grads), family


# --- class counts ------------------------------------------------------------------------------------------------

def test_every_head_of_a_wrapped_zoo_model_gets_the_dataset_class_count():
    """Sparse R-CNN's six stage heads and Cascade R-CNN's three all get the count; the RPN keeps its one
    class-agnostic class; an explicit option that disagrees is refused, naming the key and both counts."""
    from mammo_det.zoo import ClassCountError, class_counts, set_class_counts, wrapped_model_config

    sparse = wrapped_model_config('mmdet::sparse_rcnn/sparse-rcnn_r50_fpn_1x_coco.py')
    assert [n['num_classes'] for _, n in class_counts(sparse)] == [80] * 6
    set_class_counts(sparse, 3)
    assert [p for p, _ in class_counts(sparse)] == [f'model.roi_head.bbox_head[{i}]' for i in range(6)]
    assert all(n['num_classes'] == 3 for _, n in class_counts(sparse))
    cascade = wrapped_model_config('mmdet::cascade_rcnn/cascade-rcnn_r50_fpn_1x_coco.py')
    set_class_counts(cascade, 3, dict(roi_head=dict(bbox_head=[dict(num_classes=3)])))
    assert [n['num_classes'] for _, n in class_counts(cascade)] == [3, 3, 3]
    assert cascade.rpn_head.get('num_classes', 1) == 1
    with pytest.raises(ClassCountError, match=r'detector_options.bbox_head.num_classes = 80, but the dataset has 2'):
        set_class_counts(wrapped_model_config('mmdet::atss/atss_r50_fpn_1x_coco.py'), 2, dict(
            bbox_head=dict(num_classes=80)), 'detector_options')
    # built by the registry: a model given as a dict states its count too
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope

    init_default_scope('mmdet')
    with pytest.raises(ClassCountError, match=r'BiradsDetector.detector.bbox_head.num_classes = 2, but the dataset '
                                              r'has 3 classes'):
        MODELS.build(dict(type='BiradsDetector', detector=_tiny_retinanet(), num_classes=3))


def test_the_runner_fills_the_wrapper_class_count_and_refuses_a_config_that_disagrees(tmp_path):
    """The runner sets a BiradsDetector's count from the dataset (its metainfo, else its annotation file), and
    stops any config whose head states another, naming both."""
    import json

    from mmengine.config import Config

    from mammo_det.apis.runner import SetupError, load_config

    (tmp_path / 'annotations').mkdir()
    cats = [dict(id=i + 1, name=n) for i, n in enumerate(['Mass', 'Suspicious Calcification', 'Asymmetry'])]
    (tmp_path / 'annotations' / 'instances_train.json').write_text(json.dumps(dict(images=[], annotations=[],
                                                                                   categories=cats)))
    data = dict(type='MammoDataset', data_root=str(tmp_path) + '/', ann_file='annotations/instances_train.json')
    wrapped = dict(type='BiradsDetector', detector='mmdet::atss/atss_r50_fpn_1x_coco.py')
    cfg = load_config(Config(dict(model=wrapped, train_dataloader=dict(dataset=data))), str(tmp_path / 'w'))
    assert cfg.model.num_classes == 3
    named = Config(dict(model=wrapped, train_dataloader=dict(dataset=dict(data, metainfo=dict(classes=['Mass'])))))
    assert load_config(named, str(tmp_path / 'w')).model.num_classes == 1
    with pytest.raises(SetupError, match=r'bbox_head.num_classes = 10, but the dataset has 3 classes'):
        load_config(Config(dict(model=dict(wrapped, detector_options=dict(bbox_head=dict(num_classes=10))),
                                train_dataloader=dict(dataset=data))), str(tmp_path / 'w'))
    with pytest.raises(SetupError, match=r'model.roi_head.bbox_head.num_classes = 10, but the dataset has 3 '
                                         r'classes.*instances_train.json'):
        load_config(Config.fromfile('configs/faster_rcnn/faster-rcnn_r50_fpn_birads_1x_vindr-mammo.py'),
                    str(tmp_path / 'w'), data_root=str(tmp_path))


# --- BI-RADS for boxes from anywhere ---------------------------------------------------------------------------

def _tiny_classifier():
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope

    init_default_scope('mmdet')
    torch.manual_seed(0)
    return MODELS.build(dict(
        type='BiradsClassifier', data_preprocessor=dict(type='DetDataPreprocessor', mean=[0.], std=[1.],
                                                        bgr_to_rgb=False, pad_size_divisor=16),
        backbone=dict(type='ResNet', depth=18, in_channels=1, base_channels=8, num_stages=3, out_indices=(1, 2),
                      strides=(1, 2, 2), dilations=(1, 1, 1), norm_cfg=dict(type='BN'), init_cfg=None),
        neck=dict(type='FPN', in_channels=[16, 32], out_channels=8, num_outs=2),
        birads_head=dict(roi_size=3, fc_channels=16, jitter=0)))


def test_the_classifier_learns_on_ground_truth_and_classifies_given_boxes():
    """Its loss is its RoIBiradsHead's on the neck's features; at test time it classifies the boxes a sample
    carries as proposals (scaled to the network input), keeping their scores and labels, else the ground truth's;
    each box's BI-RADS is that of the box alone (another box beside it changes nothing)."""
    from mmengine.structures import InstanceData

    model = _tiny_classifier()
    model.eval()
    batch = _batch()
    inputs = torch.rand(2, 1, IMG, IMG) * 255
    feats = model.extract_feat(inputs)
    with torch.no_grad():
        assert model.loss(inputs, batch)['loss_birads'].item() == pytest.approx(
            model.birads_head.loss(feats, batch)['loss_birads'].item(), rel=1e-6)
        gt = model.predict(inputs, _batch())
        for s, ref in zip(gt, batch):
            torch.testing.assert_close(s.pred_instances.bboxes, ref.gt_instances.bboxes)
            assert s.pred_instances.scores.tolist() == [1.0] * len(ref.gt_instances)
        one = _batch()
        one[0].proposals = InstanceData(bboxes=torch.tensor([[4., 4., 30., 30.]]), scores=torch.tensor([0.3]),
                                        labels=torch.tensor([1]))
        two = _batch()
        two[0].proposals = InstanceData(bboxes=torch.tensor([[4., 4., 30., 30.], [34., 30., 60., 58.]]))
        a, b = model.predict(inputs, one)[0].pred_instances, model.predict(inputs, two)[0].pred_instances
    assert a.scores.tolist() == pytest.approx([0.3]) and a.labels.tolist() == [1]
    torch.testing.assert_close(a.birads_scores[0], b.birads_scores[0])
    torch.testing.assert_close(a.birads_scores[0], gt[0].pred_instances.birads_scores[0])  # the same box as GT 0
    assert b.birads.tolist() == (b.birads_scores.argmax(1) + 3).tolist()


def test_with_the_branch_the_wrapped_detector_trains_exactly_as_without_it():
    """Features detached, the head built on a fork of the random state and its jitter drawn from its own
    generator: two training steps of the wrapper leave the zoo detector's weights bit for bit where the
    branchless wrapper leaves them, with the random stream the detector's own sampling uses unchanged."""
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope

    init_default_scope('mmdet')
    weights = {}
    for with_birads in (True, False):
        torch.manual_seed(0)
        zoo = dict(_tiny_retinanet(), train_cfg=dict(
            assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.4, neg_iou_thr=0.3, min_pos_iou=0, ignore_iof_thr=-1),
            sampler=dict(type='PseudoSampler'), allowed_border=-1, pos_weight=-1, debug=False))
        model = MODELS.build(dict(type='BiradsDetector', detector=zoo, with_birads=with_birads,
                                  birads_head=dict(jitter=3), data_preprocessor=dict(type='DetDataPreprocessor')))
        opt = torch.optim.SGD(model.detector.parameters(), lr=0.01)
        for _ in range(2):
            data = dict(inputs=[torch.randint(0, 255, (1, IMG, IMG), dtype=torch.uint8) for _ in range(2)],
                        data_samples=_batch())
            batch = model.data_preprocessor(data, True)
            losses = model.loss(batch['inputs'], batch['data_samples'])
            opt.zero_grad()
            total, _ = model.parse_losses(losses)  # the BI-RADS loss included: its gradient stops at the features
            total.backward()
            opt.step()
        weights[with_birads] = {k: v.clone() for k, v in model.detector.state_dict().items()}
        weights[(with_birads, 'rng')] = torch.rand(1).item()
    for k in weights[False]:
        assert torch.equal(weights[True][k], weights[False][k]), k
    assert weights[(True, 'rng')] == weights[(False, 'rng')]
