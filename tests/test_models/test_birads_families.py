"""The BI-RADS branch of each detector family on batches built by hand: the loss equals the cross-entropy of the
assigned targets computed another way; after the score filter, NMS and top-k each kept box has the probabilities of
its own prior or query; switched off (or on) the detections are the MMDetection head's own."""
import pytest
import torch
import torch.nn.functional as F
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy
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


def _dense_head(kind, **kw):
    from mmdet.registry import MODELS

    common = dict(num_classes=2, in_channels=8, feat_channels=8, stacked_convs=1,
                  loss_birads=dict(type='CrossEntropyLoss', loss_weight=1.0))
    if kind == 'retina':
        cfg = dict(type='BiradsRetinaHead', **common,
                   anchor_generator=dict(type='AnchorGenerator', octave_base_scale=4, scales_per_octave=1,
                                         ratios=[0.5, 1.0, 2.0], strides=[8, 16]),
                   train_cfg=dict(assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.4, neg_iou_thr=0.3,
                                                min_pos_iou=0, ignore_iof_thr=-1),
                                  sampler=dict(type='PseudoSampler'), allowed_border=-1, pos_weight=-1, debug=False),
                   test_cfg=dict(nms_pre=1000, min_bbox_size=0, score_thr=0.0, nms=dict(type='nms', iou_threshold=0.5),
                                 max_per_img=50))
    else:
        cfg = dict(type='BiradsFCOSHead', **common, strides=[8, 16], regress_ranges=((-1, 24), (24, 1e8)),
                   norm_cfg=None, center_sampling=True, center_sample_radius=1.5,
                   test_cfg=dict(nms_pre=1000, min_bbox_size=0, score_thr=0.0,
                                 nms=dict(type='nms', iou_threshold=0.5), max_per_img=50))
    cfg.update(kw)
    cfg['test_cfg'] = ConfigDict(cfg['test_cfg'])  # as a config file gives it
    torch.manual_seed(0)
    head = MODELS.build(cfg)
    head.init_weights()
    return head, cfg


def _features():
    torch.manual_seed(1)
    return (torch.randn(2, 8, IMG // 8, IMG // 8), torch.randn(2, 8, IMG // 16, IMG // 16))


@pytest.mark.parametrize('kind', ['retina', 'fcos'])
def test_dense_loss_equals_cross_entropy_of_the_priors_assigned_boxes(kind):
    """Reference targets: mmdet's own target computation of the parent head run with the BI-RADS as the class
    labels (a head of 4 classes: 0..2 BI-RADS, 3 for a box without one); positives of class 3 and background are
    left out."""
    head, cfg = _dense_head(kind)
    batch = _batch()
    x = _features()
    losses = head.loss(x, batch)
    ref_head, _ = _dense_head(kind, num_classes=4)
    gts = []
    for s in batch:
        g = s.gt_instances.new()
        g.labels = torch.where(s.gt_instances.birads >= 3, s.gt_instances.birads - 3, 3)
        gts.append(g)
    feat_sizes = [f.shape[-2:] for f in x]
    metas = [s.metainfo for s in batch]
    if kind == 'retina':
        anchors, valid = ref_head.get_anchors(feat_sizes, metas, device='cpu')
        labels = ref_head.get_targets(anchors, valid, gts, metas, return_sampling_results=False)[0]
        # per level, stacked images: (N, A) -> the same (image, level, y, x, anchor) order as the head's
        targets = torch.cat([lv.reshape(2, -1) for lv in labels], dim=1)
    else:
        points = ref_head.prior_generator.grid_priors(feat_sizes, dtype=torch.float32, device='cpu')
        labels, _ = ref_head.get_targets(points, gts)
        targets = torch.cat([lv.reshape(2, -1) for lv in labels], dim=1)
    logits = head.flatten_priors(head.birads_maps(x))
    keep = targets < 3
    assert 0 < int(keep.sum()) < int((targets < 4).sum())  # some positives without a BI-RADS are left out
    expected = F.cross_entropy(logits[keep], targets[keep])
    assert losses['loss_birads'].item() == pytest.approx(expected.item(), rel=1e-5)
    assert set(losses) >= {'loss_cls', 'loss_bbox', 'loss_birads'}


@pytest.mark.parametrize('kind', ['retina', 'fcos'])
def test_dense_kept_boxes_carry_their_own_priors_probabilities(kind):
    """Each prior gets distinct BI-RADS logits; every kept box's probabilities are those of the prior whose
    decoded box it is, also after the logits are permuted over the priors."""
    head, _ = _dense_head(kind)
    head.eval()
    x = _features()
    batch = _batch()
    with torch.no_grad():
        outs = head(x)
        priors = head.prior_generator.grid_priors([f.shape[-2:] for f in x], device='cpu')
        n = sum(len(p) for p in priors)
        for perm in (torch.arange(n), torch.randperm(n, generator=torch.Generator().manual_seed(3))):
            table = torch.randn(n, NUM_BIRADS, generator=torch.Generator().manual_seed(4))[perm]
            maps, start = [], 0
            for f in x:  # the table written back as (N, A x 3, H, W) maps, the head's prior order
                h, w = f.shape[-2:]
                k = h * w * head.num_base_priors
                maps.append(table[start:start + k].reshape(1, h, w, -1).permute(0, 3, 1, 2).repeat(2, 1, 1, 1))
                start += k
            head.birads_maps = lambda feats, maps=maps: maps
            results = head.predict(x, batch)
            del head.birads_maps
            for img, res in enumerate(results):
                boxes = _decoded(head, outs, priors, img)  # every prior's own decoded box
                assert len(res.bboxes) > 5
                for b, p in zip(res.bboxes, res.birads_scores):
                    i = int(((boxes - b).abs().sum(1)).argmin())
                    torch.testing.assert_close(p, F.softmax(table[i], -1))
                assert torch.allclose(res.birads_scores.sum(1), torch.ones(len(res.bboxes)))
                assert res.birads.tolist() == (res.birads_scores.argmax(1) + 3).tolist()


def _decoded(head, outs, priors, img):
    bbox_preds = torch.cat([b[img].permute(1, 2, 0).reshape(-1, head.bbox_coder.encode_size) for b in outs[1]])
    return head.bbox_coder.decode(torch.cat(priors), bbox_preds, max_shape=(IMG, IMG))


@pytest.mark.parametrize('kind', ['retina', 'fcos'])
@pytest.mark.parametrize('with_birads', [True, False])
def test_dense_detections_equal_the_mmdet_heads(kind, with_birads):
    from mmdet.registry import MODELS

    head, cfg = _dense_head(kind, with_birads=with_birads)
    plain = dict(cfg, type='RetinaHead' if kind == 'retina' else 'FCOSHead')
    plain.pop('loss_birads')
    plain.pop('with_birads')
    ref = MODELS.build(plain)
    missing = ref.load_state_dict(head.state_dict(), strict=False)
    assert not missing.missing_keys
    assert bool(missing.unexpected_keys) == with_birads  # the branch's weights only
    head.eval(), ref.eval()
    x, batch = _features(), _batch()
    with torch.no_grad():
        ours, theirs = head.predict(x, batch), ref.predict(x, batch)
    for a, b in zip(ours, theirs):
        for key in ('bboxes', 'scores', 'labels'):
            torch.testing.assert_close(a[key], b[key])
        assert ('birads_scores' in a) == with_birads


# --- DETR family ---------------------------------------------------------------------------------------------------

def _detr_head(kind, **kw):
    from mmdet.registry import MODELS

    cfg = dict(type='BiradsDINOHead' if kind == 'dino' else 'BiradsDeformableDETRHead', num_classes=2, embed_dims=16,
               num_pred_layer=3 if kind == 'dino' else 2, as_two_stage=kind == 'dino', share_pred_layer=False,
               sync_cls_avg_factor=False,
               loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
               loss_bbox=dict(type='L1Loss', loss_weight=5.0), loss_iou=dict(type='GIoULoss', loss_weight=2.0),
               loss_birads=dict(type='CrossEntropyLoss', loss_weight=1.0),
               train_cfg=dict(assigner=dict(type='HungarianAssigner', match_costs=[
                   dict(type='FocalLossCost', weight=2.0), dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
                   dict(type='IoUCost', iou_mode='giou', weight=2.0)])),
               test_cfg=dict(max_per_img=5))
    cfg.update(kw)
    cfg['test_cfg'] = ConfigDict(cfg['test_cfg'])
    torch.manual_seed(0)
    head = MODELS.build(cfg)
    head.init_weights()
    return head, cfg


def _detr_inputs(queries, layers=2):
    g = torch.Generator().manual_seed(5)
    hidden = torch.randn(layers, 2, queries, 16, generator=g)
    refs = [torch.rand(2, queries, 4, generator=g) * 0.5 + 0.25 for _ in range(layers + 1)]
    return hidden, refs


def _detr_feats():
    """The neck's maps the BI-RADS branch pools (embed_dims channels, strides 8 and 16 of a 64-pixel batch)."""
    torch.manual_seed(1)
    return (torch.randn(2, 16, IMG // 8, IMG // 8), torch.randn(2, 16, IMG // 16, IMG // 16))


def _cross_entropy_of(logits, targets):
    keep = targets >= 0
    return F.cross_entropy(logits[keep], targets[keep])


@pytest.mark.parametrize('kind', ['deformable', 'dino'])
def test_detr_loss_per_layer_equals_cross_entropy_of_the_hungarian_matches(kind):
    """Reference: the head's assigner run directly on each layer's predictions, and the logits of every query
    pooled in its own box; for DINO also the denoising queries, whose box is known by construction (groups of
    positives then negatives)."""
    head, _ = _detr_head(kind)
    batch = _batch()
    metas = [s.metainfo for s in batch]
    n_match = 6
    dn_meta = dict(num_denoising_queries=8, num_denoising_groups=2) if kind == 'dino' else None
    n_dn = dn_meta['num_denoising_queries'] if dn_meta else 0
    hidden, refs = _detr_inputs(n_match + n_dn)
    feats = _detr_feats()
    args = dict(hidden_states=hidden, references=refs, enc_outputs_class=None, enc_outputs_coord=None,
                batch_data_samples=batch, birads_feats=feats)
    if dn_meta:
        args.update(dn_meta=dn_meta)
    losses = head.loss(**args)
    with torch.no_grad():
        cls, coords = head(hidden, refs)
    for layer in range(2):
        logits = head.query_logits(layer, feats, list(coords[layer]), metas).reshape(2, -1, 3)
        targets = []
        for img, s in enumerate(batch):
            scale = torch.tensor([IMG, IMG, IMG, IMG], dtype=torch.float32)
            boxes = bbox_cxcywh_to_xyxy(coords[layer, img, n_dn:]) * scale
            pred = InstanceData(scores=cls[layer, img, n_dn:], bboxes=boxes)
            res = head.assigner.assign(pred, s.gt_instances, img_meta=s.metainfo)
            t = torch.full((n_match,), -1)
            pos = res.gt_inds > 0
            b = s.gt_instances.birads[res.gt_inds[pos] - 1]
            t[pos] = torch.where(b >= 3, b - 3, -1)
            targets.append(t)
        expected = _cross_entropy_of(logits[:, n_dn:].reshape(-1, 3), torch.cat(targets))
        key = 'loss_birads' if layer == 1 else f'd{layer}.loss_birads'
        assert losses[key].item() == pytest.approx(expected.item(), rel=1e-5), key
        if dn_meta:
            dn_t = []
            per_group = n_dn // 2
            for s in batch:  # group g: queries g*per_group + k are the positives of box k, then the negatives
                t = torch.full((n_dn,), -1)
                b = s.gt_instances.birads
                for grp in range(2):
                    t[grp * per_group + torch.arange(len(b))] = torch.where(b >= 3, b - 3, -1)
                dn_t.append(t)
            expected = _cross_entropy_of(logits[:, :n_dn].reshape(-1, 3), torch.cat(dn_t))
            key = 'dn_loss_birads' if layer == 1 else f'd{layer}.dn_loss_birads'
            assert losses[key].item() == pytest.approx(expected.item(), rel=1e-5), key


@pytest.mark.parametrize('kind', ['deformable', 'dino'])
def test_detr_kept_boxes_carry_the_probabilities_of_their_query(kind):
    """Each kept box's probabilities are those pooled in the box of the query it came from; the boxes, scores and
    labels are the mmdet head's own."""
    head, cfg = _detr_head(kind)
    head.eval()
    hidden, refs = _detr_inputs(9)
    feats = _detr_feats()
    batch = _batch()
    metas = [s.metainfo for s in batch]
    with torch.no_grad():
        results = head.predict(hidden, refs, batch, rescale=False, birads_feats=feats)
        cls, coords = head(hidden, refs)
        logits = head.query_logits(1, feats, list(coords[-1]), metas).reshape(2, 9, 3)
    for img, res in enumerate(results):
        assert len(res.bboxes) == cfg['test_cfg']['max_per_img']
        boxes = bbox_cxcywh_to_xyxy(coords[-1, img]) * IMG
        for b, p in zip(res.bboxes, res.birads_scores):
            q = int((boxes.clamp(0, IMG) - b).abs().sum(1).argmin())
            torch.testing.assert_close(p, F.softmax(logits[img, q], -1))
    plain = dict(cfg, type='DINOHead' if kind == 'dino' else 'DeformableDETRHead')
    plain.pop('loss_birads')
    from mmdet.registry import MODELS

    ref = MODELS.build(plain)
    ref.load_state_dict(head.state_dict(), strict=False)
    ref.eval()
    with torch.no_grad():
        theirs = ref.predict(hidden, refs, batch, rescale=False)
    for a, b in zip(results, theirs):
        for key in ('bboxes', 'scores', 'labels'):
            torch.testing.assert_close(a[key], b[key])
    off, _ = _detr_head(kind, with_birads=False)
    assert not hasattr(off, 'birads_branches')


def test_detr_head_without_the_neck_maps_names_the_detector_to_use():
    head, _ = _detr_head('dino')
    hidden, refs = _detr_inputs(9)
    head.eval()
    with pytest.raises(ValueError, match="type='BiradsDINO'"), torch.no_grad():
        head.predict(hidden, refs, _batch(), rescale=False)


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
    return dict(
        type='RetinaNet',
        data_preprocessor=dict(type='DetDataPreprocessor', mean=[0.], std=[1.], bgr_to_rgb=False, pad_size_divisor=32),
        backbone=dict(type='ResNet', depth=18, in_channels=1, base_channels=8, num_stages=3, out_indices=(1, 2),
                      strides=(1, 2, 2), dilations=(1, 1, 1),
                      norm_cfg=dict(type='BN'), init_cfg=None),
        neck=dict(type='FPN', in_channels=[16, 32], out_channels=8, num_outs=2),
        bbox_head=_dense_head('retina')[1] | dict(type='RetinaHead', test_cfg=None),
        test_cfg=dict(nms_pre=100, min_bbox_size=0, score_thr=0.0, nms=dict(type='nms', iou_threshold=0.5),
                      max_per_img=20))


@pytest.mark.parametrize('with_birads', [True, False])
def test_wrapper_switched_off_is_the_zoo_detector_and_on_keeps_its_boxes(with_birads):
    """BiradsDetector(with_birads=False) has no BI-RADS weights and predicts what the wrapped MMDetection model
    predicts with the same weights; switched on, the boxes are the same and each carries probabilities of 3/4/5."""
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope

    init_default_scope('mmdet')  # the data preprocessors are built by name, as in a config
    head = _tiny_retinanet()['bbox_head']
    for key in ('loss_birads', 'train_cfg'):
        head.pop(key)
    zoo = dict(_tiny_retinanet(), bbox_head=head)
    torch.manual_seed(0)
    wrapper = MODELS.build(dict(type='BiradsDetector', detector=zoo, with_birads=with_birads))
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
    if family in ('retina', 'fcos'):
        head, _ = _dense_head(family, detach_features=detach)
        x = tuple(f.requires_grad_() for f in _features())
        return x, head.loss(x, batch)['loss_birads']
    if family in ('deformable', 'dino'):
        head, _ = _detr_head(family, detach_features=detach)
        dn_meta = dict(num_denoising_queries=8, num_denoising_groups=2) if family == 'dino' else None
        hidden, refs = _detr_inputs(6 + (8 if dn_meta else 0))
        x = tuple(f.requires_grad_() for f in _detr_feats())
        args = (dn_meta,) if dn_meta else ()
        return x, head.loss(hidden, refs, None, None, batch, *args, birads_feats=x)['loss_birads']
    if family == 'roi':
        head = MODELS.build(dict(type='RoIBiradsHead', in_channels=8, featmap_strides=[8, 16], roi_size=3,
                                 fc_channels=16, jitter=0, detach_features=detach))
        x = tuple(f.requires_grad_() for f in _features())
        return x, head.loss(x, batch)['loss_birads']
    head = MODELS.build(dict(type='BiradsBBoxHead', in_channels=8, roi_feat_size=3, fc_out_channels=16,
                             num_classes=2, detach_features=detach))
    roi_feats = torch.randn(5, 8, 3, 3, requires_grad=True)
    return (roi_feats,), head.birads_loss(head.forward_birads(roi_feats), torch.tensor([0, 2, -1, 1, -1]))


@pytest.mark.parametrize('family', ['retina', 'fcos', 'deformable', 'dino', 'roi', 'two-stage'])
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
