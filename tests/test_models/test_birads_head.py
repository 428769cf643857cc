import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.structures import InstanceData

import mammo_det  # noqa: F401  (registers)
from mammo_det.models.roi_heads.birads import BiradsBBoxHead, birads_targets


class _Sampling:
    def __init__(self, n_pos, n_neg, gt_inds):
        self.pos_inds = torch.arange(n_pos)
        self.neg_inds = torch.arange(n_neg)
        self.pos_assigned_gt_inds = torch.tensor(gt_inds, dtype=torch.long)


def test_targets_ignore_missing_birads_and_background():
    res = [_Sampling(3, 2, [0, 1, 0]), _Sampling(1, 1, [0])]
    gt = [torch.tensor([4, -1]), torch.tensor([5])]
    t = birads_targets(res, gt)
    # image 1: pos -> gt0 (4)=1, gt1 (none)=-1, gt0=1; negs -1 -1; image 2: pos -> 5=2, neg -1
    assert t.tolist() == [1, -1, 1, -1, -1, 2, -1]
    assert birads_targets([_Sampling(2, 1, [0, 0])], [None]).tolist() == [-1, -1, -1]


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


def test_shared_features_feed_birads_branch():
    head = BiradsBBoxHead(in_channels=4, fc_out_channels=8, roi_feat_size=2, num_classes=2)
    x = torch.randn(5, 4, 2, 2)
    cls, reg = head(x)
    assert cls.shape == (5, 3) and reg.shape == (5, 8)
    logits = head.forward_birads()
    shared = x.flatten(1)
    for fc in head.shared_fcs:
        shared = torch.relu(F.linear(shared, fc.weight, fc.bias))  # F.linear: no hook fires
    torch.testing.assert_close(logits, head.fc_birads(shared))
    with pytest.raises(RuntimeError, match='forward'):
        head.forward_birads()  # consumed: never reuses stale features


def _tiny_detector(cascade=False):
    from mmengine.config import Config
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules()
    cfg = Config.fromfile('configs/demo/faster-rcnn_r18-w16_fpn_birads_1xb4-12e_synth-mammo.py')
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


@pytest.mark.parametrize('with_gt', [True, False])
def test_detector_loss_has_birads_term(with_gt):
    torch.manual_seed(0)
    model = _tiny_detector()
    data = _batch(model, with_gt)
    losses = model.loss(data['inputs'], data['data_samples'])
    assert 'loss_birads' in losses
    assert torch.isfinite(losses['loss_birads'])
    if not with_gt:
        assert losses['loss_birads'].item() == 0.0  # nothing labelled: no BI-RADS signal


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
