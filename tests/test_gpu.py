"""On a machine with a GPU: mmcv's compiled CUDA ops, one AMP training step per shipped config, one nccl DDP step.

Marked ``gpu`` and skipped where no GPU is visible (every CPU run, CI included): ``pytest -m gpu`` on a GPU node.
"""
import os
import subprocess
import sys

import pytest
import torch

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')]

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_cuda_nms_and_roi_align_equal_the_cpu_ops():
    from mmcv.ops import RoIAlign, nms

    g = torch.Generator().manual_seed(0)
    xy = torch.rand(200, 2, generator=g) * 400
    boxes = torch.cat([xy, xy + 20 + torch.rand(200, 2, generator=g) * 80], 1)
    scores = torch.rand(200, generator=g)
    _, keep_cpu = nms(boxes, scores, 0.5)
    _, keep_gpu = nms(boxes.cuda(), scores.cuda(), 0.5)
    assert keep_gpu.cpu().tolist() == keep_cpu.tolist()
    feats = torch.rand(2, 8, 32, 32, generator=g)
    rois = torch.tensor([[0, 1., 2., 20., 25.], [1, 5., 5., 30., 12.], [0, 0., 0., 31., 31.]])
    align = RoIAlign((7, 7), spatial_scale=1.0, sampling_ratio=2, aligned=True)
    torch.testing.assert_close(align(feats.cuda(), rois.cuda()).cpu(), align(feats, rois), atol=1e-5, rtol=1e-4)


def test_cuda_sigmoid_focal_loss_equals_the_formula():
    from mmcv.ops import sigmoid_focal_loss

    g = torch.Generator().manual_seed(1)
    logits = torch.randn(64, 10, generator=g)
    labels = torch.randint(0, 11, (64,), generator=g)  # 10 = background
    got = sigmoid_focal_loss(logits.cuda(), labels.cuda(), 2.0, 0.25, None, 'none').cpu()
    onehot = torch.nn.functional.one_hot(labels, 11)[:, :10].float()
    p = logits.sigmoid()
    pt = p * onehot + (1 - p) * (1 - onehot)
    alpha = 0.25 * onehot + 0.75 * (1 - onehot)
    expected = -alpha * (1 - pt) ** 2 * torch.log(pt.clamp_min(1e-12))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


def test_cuda_deformable_attention_equals_the_pytorch_reference():
    from mmcv.ops.multi_scale_deform_attn import (MultiScaleDeformableAttnFunction,
                                                  multi_scale_deformable_attn_pytorch)

    g = torch.Generator().manual_seed(2)
    shapes = torch.tensor([[16, 16], [8, 8], [4, 4], [2, 2]])
    starts = torch.cat([shapes.new_zeros(1), (shapes[:, 0] * shapes[:, 1]).cumsum(0)[:-1]])
    n_value = int((shapes[:, 0] * shapes[:, 1]).sum())
    value = torch.rand(2, n_value, 8, 32, generator=g)
    locs = torch.rand(2, 50, 8, 4, 4, 2, generator=g)
    weights = torch.rand(2, 50, 8, 4, 4, generator=g)
    weights = weights / weights.sum((-1, -2), keepdim=True)
    ref = multi_scale_deformable_attn_pytorch(value, shapes, locs, weights)
    got = MultiScaleDeformableAttnFunction.apply(value.cuda(), shapes.cuda(), starts.cuda(), locs.cuda(),
                                                 weights.cuda(), 64)
    torch.testing.assert_close(got.cpu(), ref, atol=1e-4, rtol=1e-3)


def _configs():
    from mammo_det.apis.configs import list_configs, package_configs_dir

    return [os.path.join(package_configs_dir(), c) for c in list_configs() if not c.startswith('demo')]


def _batch(model, h=512, w=384):
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData

    samples = []
    for _ in range(2):
        s = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w), scale_factor=(1., 1.),
                                        batch_input_shape=(h, w)))
        s.gt_instances = InstanceData(bboxes=torch.tensor([[50., 60., 200., 230.], [250., 300., 330., 420.]]),
                                      labels=torch.tensor([0, 1]), birads=torch.tensor([4, -1]))
        samples.append(s)
    return dict(inputs=[torch.randint(0, 256, (3, h, w), dtype=torch.uint8) for _ in range(2)], data_samples=samples)


@pytest.mark.parametrize('config', _configs(), ids=os.path.basename)
def test_one_amp_training_step_per_config(config):
    """AmpOptimWrapper on the GPU: every loss finite (an overflowing float16 IoU would make them nan)."""
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    import mammo_det.registry  # noqa: F401

    register_all_modules()
    cfg = Config.fromfile(config)
    cfg.model.backbone.init_cfg = None  # the ImageNet weights are not this test's subject
    model = MODELS.build(cfg.model).cuda().train()
    model.init_weights()
    wrapper_cfg = dict(cfg.optim_wrapper, type='AmpOptimWrapper')
    wrapper_cfg.setdefault('loss_scale', 'dynamic')
    wrapper = build_optim_wrapper(model, wrapper_cfg)
    log = model.train_step(_batch(model), wrapper)
    assert all(torch.isfinite(torch.as_tensor(v)).all() for v in log.values()), log
    assert log['loss'] > 0
    if 'birads' in os.path.basename(config):
        assert any(k.endswith('loss_birads') for k in log)


def test_one_process_nccl_ddp_step(tmp_path):
    code = '''
import os, torch, torch.distributed as dist
from mmengine.model import MMDistributedDataParallel
os.environ.update(RANK='0', WORLD_SIZE='1', LOCAL_RANK='0', MASTER_ADDR='127.0.0.1', MASTER_PORT='29561')
dist.init_process_group('nccl')
torch.cuda.set_device(0)
model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1)).cuda()
ddp = MMDistributedDataParallel(module=model, device_ids=[0], broadcast_buffers=False)
loss = ddp(torch.rand(4, 8, device='cuda')).sum()
loss.backward()
assert all(p.grad is not None for p in model.parameters())
dist.all_reduce(loss.detach())
dist.destroy_process_group()
print('ok', dist.is_nccl_available())
'''
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ['ok', 'True']
