import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.structures import InstanceData

import mammo_det.registry  # noqa: F401
from mammo_det.models.roi_heads.birads import BiradsBBoxHead, BiradsSampler, birads_targets


class _Sampling:
    def __init__(self, n_neg, pos_gt_birads):
        self.neg_inds = torch.arange(n_neg)
        self.pos_gt_birads = torch.tensor(pos_gt_birads, dtype=torch.long)


def test_targets_ignore_missing_birads_and_background():
    res = [_Sampling(2, [4, -1, 4]), _Sampling(1, [5])]
    # image 1: positives with BI-RADS 4, none, 4 -> 1, -1, 1; negatives -1 -1; image 2: 5 -> 2, negative -1
    assert birads_targets(res).tolist() == [1, -1, 1, -1, -1, 2, -1]
    assert birads_targets([_Sampling(1, [-1, -1])]).tolist() == [-1, -1, -1]


def test_sampler_wrapper_takes_each_positive_birads_from_its_ground_truth():
    from mmdet.models.task_modules.assigners import AssignResult
    from mmdet.models.task_modules.samplers import PseudoSampler

    gt = InstanceData(bboxes=torch.tensor([[0., 0., 10., 10.], [20., 20., 30., 30.]]), labels=torch.tensor([0, 1]),
                      birads=torch.tensor([5, -1]))
    priors = InstanceData(priors=torch.tensor([[20., 20., 30., 30.], [50., 50., 60., 60.], [0., 0., 10., 10.]]))
    assign = AssignResult(2, gt_inds=torch.tensor([2, 0, 1]), max_overlaps=torch.tensor([1., 0., 1.]),
                          labels=torch.tensor([1, -1, 0]))
    res = BiradsSampler(PseudoSampler()).sample(assign, priors, gt)
    assert res.pos_assigned_gt_inds.tolist() == [1, 0]
    assert res.pos_gt_birads.tolist() == [-1, 5]
    no_birads = InstanceData(bboxes=gt.bboxes, labels=gt.labels)
    assert BiradsSampler(PseudoSampler()).sample(assign, priors, no_birads).pos_gt_birads.tolist() == [-1, -1]


def test_birads_loss_exact_value_and_all_ignored():
    head = BiradsBBoxHead(in_channels=4, fc_out_channels=8, roi_feat_size=2, num_classes=2)
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0], [5.0, 5.0, 5.0], [0.5, -0.5, 3.0]],
                          requires_grad=True)
    targets = torch.tensor([0, -1, 2, 2])
    loss = head.birads_loss(logits, targets)
    expected = F.cross_entropy(logits[[0, 2, 3]], targets[[0, 2, 3]])  # mean over the 3 labelled RoIs
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    zero = head.birads_loss(logits, torch.full((4,), -1))
    assert zero.item() == 0.0
    zero.backward()  # still in the graph
    assert logits.grad is not None


def test_birads_branch_is_its_own_tower_on_the_roi_features():
    """The logits are the branch's fcs and classifier applied to the pooled RoI features, not the shared fcs'
    output; the parent's outputs are untouched by it."""
    head = BiradsBBoxHead(in_channels=4, fc_out_channels=8, roi_feat_size=2, num_classes=2, birads_fcs=2)
    x = torch.randn(5, 4, 2, 2)
    h = x.flatten(1)
    for fc in (head.birads_fcs[1], head.birads_fcs[3]):
        h = torch.relu(F.linear(h, fc.weight, fc.bias))
    torch.testing.assert_close(head.forward_birads(x), F.linear(h, head.fc_birads.weight, head.fc_birads.bias))
    plain = BiradsBBoxHead(in_channels=4, fc_out_channels=8, roi_feat_size=2, num_classes=2, with_birads=False)
    plain.load_state_dict({k: v for k, v in head.state_dict().items() if 'birads' not in k})
    for ours, theirs in zip(head(x), plain(x)):
        torch.testing.assert_close(ours, theirs)
    assert not hasattr(plain, 'birads_fcs') and not hasattr(plain, 'fc_birads')


def _tiny_detector(cascade=False):
    from mmengine.config import Config
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    register_all_modules()
    cfg = Config.fromfile('configs/demo/faster-rcnn_r18-w16_fpn_birads_1xb4-24e_synth-mammo.py')
    if cascade:  # the shipped Cascade R-CNN head on the demo's small backbone and neck
        cascade_cfg = Config.fromfile('configs/cascade_rcnn/cascade-rcnn_r50_fpn_birads_1x_vindr-mammo.py').model
        cfg.model.type = 'CascadeRCNN'
        cfg.model.roi_head = cascade_cfg.roi_head
        cfg.model.roi_head.bbox_roi_extractor.out_channels = 64
        for stage in cfg.model.roi_head.bbox_head:
            stage.update(in_channels=64, fc_out_channels=128, num_classes=2)
        cfg.model.train_cfg.rcnn = cascade_cfg.train_cfg.rcnn
        cfg.model.test_cfg.rcnn = cascade_cfg.test_cfg.rcnn
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model


def _batch(model, with_gt=True):
    from mmdet.structures import DetDataSample
    imgs = torch.rand(2, 3, 128, 96) * 255
    samples = []
    for i in range(2):
        s = DetDataSample(metainfo=dict(img_shape=(128, 96), ori_shape=(128, 96), pad_shape=(128, 96),
                                        scale_factor=(1.0, 1.0), batch_input_shape=(128, 96)))
        gt = InstanceData()
        if with_gt and i == 0:
            gt.bboxes = torch.tensor([[10., 10., 50., 60.], [40., 70., 80., 110.]])
            gt.labels = torch.tensor([0, 1])
            gt.birads = torch.tensor([4, -1])
        else:
            gt.bboxes = torch.zeros((0, 4))
            gt.labels = torch.zeros((0,), dtype=torch.long)
            gt.birads = torch.zeros((0,), dtype=torch.long)
        s.gt_instances = gt
        samples.append(s)
    return model.data_preprocessor(dict(inputs=list(imgs), data_samples=samples), training=True)


@pytest.mark.parametrize('cascade', [False, True], ids=['faster', 'cascade'])
def test_birads_loss_equals_cross_entropy_of_the_ground_truth(cascade):
    """Proposals equal to the two ground-truth boxes, which the samplers also add in front: the first two RoIs of
    the (last) stage are the gt boxes, BI-RADS 4 and none. The loss in the detector's loss dict must be the weighted
    cross-entropy of the logits of the RoIs with a BI-RADS, and those logits those of the gt boxes' RoIs."""
    from mmdet.structures.bbox import bbox2roi

    torch.manual_seed(0)
    model = _tiny_detector(cascade)
    data = _batch(model)
    x = model.extract_feat(data['inputs'])
    gt = data['data_samples'][0].gt_instances
    proposals = [InstanceData(bboxes=gt.bboxes.clone(), scores=torch.ones(2)),
                 InstanceData(bboxes=torch.zeros((0, 4)), scores=torch.zeros(0))]
    roi_head = model.roi_head
    last = roi_head.num_stages - 1 if cascade else None
    head = roi_head.bbox_head[last] if cascade else roi_head.bbox_head
    seen = []
    real = head.birads_loss
    head.birads_loss = lambda logits, targets: seen.append((logits, targets)) or real(logits, targets)
    losses = roi_head.loss(x, proposals, data['data_samples'])
    assert len(seen) == 1  # one BI-RADS loss: the last stage's only, for Cascade
    logits, targets = seen[0]
    assert targets[:2].tolist() == [1, -1]  # gt box 0 has BI-RADS 4 (class 1), gt box 1 none
    gt_rois = bbox2roi([gt.bboxes])
    again = roi_head._bbox_forward(last, x, gt_rois) if cascade else roi_head._bbox_forward(x, gt_rois)
    torch.testing.assert_close(logits[:2], head.forward_birads(again['bbox_feats']))
    weight = head.loss_birads.loss_weight * (roi_head.stage_loss_weights[last] if cascade else 1.0)
    valid = targets >= 0
    expected = weight * F.cross_entropy(logits[valid], targets[valid])
    got = losses[f's{last}.loss_birads'] if cascade else losses['loss_birads']
    assert got.item() == pytest.approx(expected.item(), rel=1e-5) and got.item() > 0
    if cascade:
        assert not any(k.endswith('loss_birads') for k in losses if not k.startswith(f's{last}.'))


@pytest.mark.parametrize('cascade', [False, True], ids=['faster', 'cascade'])
def test_birads_loss_is_zero_without_ground_truth_birads(cascade):
    torch.manual_seed(0)
    model = _tiny_detector(cascade)
    data = _batch(model, with_gt=False)
    losses = model.loss(data['inputs'], data['data_samples'])
    key = 's2.loss_birads' if cascade else 'loss_birads'
    assert losses[key].item() == 0.0  # nothing labelled: no BI-RADS signal, but the branch stays in the graph
    assert losses[key].requires_grad


def test_predictions_carry_birads_fields():
    torch.manual_seed(0)
    model = _tiny_detector().eval()
    model.roi_head.test_cfg.score_thr = 0.0
    data = _batch(model)
    with torch.no_grad():
        preds = model.predict(data['inputs'], data['data_samples'], rescale=True)
    for p in preds:
        inst = p.pred_instances
        n = len(inst.bboxes)
        assert inst.birads_scores.shape == (n, 3) and inst.birads.shape == (n,)
        if n:
            torch.testing.assert_close(inst.birads_scores.sum(1), torch.ones(n))
            assert set(inst.birads.tolist()) <= {3, 4, 5}
            assert (inst.birads == inst.birads_scores.argmax(1) + 3).all()


def test_fp32_iou_survives_half_precision_mammogram_boxes():
    from mmdet.models.task_modules import BboxOverlaps2D
    from mammo_det.models.iou import Fp32BboxOverlaps2D
    a = torch.tensor([[100., 100., 500., 500.]], dtype=torch.float16)
    b = torch.tensor([[100., 100., 500., 400.]], dtype=torch.float16)
    exact = (400 * 300) / (400 * 400)
    assert Fp32BboxOverlaps2D()(a, b).item() == pytest.approx(exact)
    plain = BboxOverlaps2D()(a, b).item()
    assert not np.isfinite(plain) or abs(plain - exact) > 1e-3  # float16 areas overflow (160000 > 65504)
