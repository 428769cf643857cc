"""Every config under configs/ builds its model and runs a forward pass (no weights are downloaded)."""
import glob
import os

import pytest
import torch

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = sorted(p for p in glob.glob(os.path.join(REPO, 'configs', '**', '*.py'), recursive=True)
                 if '_base_' not in p)


def test_every_detector_folder_has_a_config():
    names = [os.path.relpath(p, os.path.join(REPO, 'configs')) for p in CONFIGS]
    for folder in ('faster_rcnn', 'cascade_rcnn', 'retinanet', 'fcos', 'deformable_detr', 'dino', 'demo'):
        assert any(n.startswith(folder + '/') for n in names), folder
    for n in names:  # mmdet's naming grammar, and the dataset named in the file name
        assert n.endswith('_vindr-mammo.py') or n.endswith('_synth-mammo.py'), n


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: os.path.basename(p))
def test_config_builds_and_forwards(path):
    from mmengine.config import Config
    from mmdet.registry import MODELS
    from mmdet.structures import DetDataSample
    from mmdet.utils import register_all_modules
    import mammo_det.registry  # noqa: F401
    from mammo_det.apis.runner import set_model_classes
    from mammo_det.zoo import expand_wrapped

    register_all_modules()
    cfg = Config.fromfile(path)
    assert cfg.default_scope == 'mmdet'
    assert cfg.custom_imports['imports'] == ['mammo_det.registry']
    assert cfg.auto_scale_lr.base_batch_size > 0  # --auto-scale-lr needs it
    assert any(h['type'] == 'SafeCheckpointHook' for h in cfg.get('custom_hooks', []))
    assert cfg.train_dataloader.dataset.type == 'MammoDataset'
    assert cfg.train_dataloader.dataset.filter_cfg.filter_empty_gt is False
    assert cfg.val_evaluator.type == 'MammoMetric'
    set_model_classes(cfg)  # as the runner does: a wrapped zoo model's heads get the dataset's classes
    detector = expand_wrapped(cfg.model)  # a wrapped zoo model read here, so that its pretrained inits can go
    _keep_every_box(detector)
    _no_pretrained(cfg.model)  # ImageNet and demo weights are fetched only when training
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()  # some parameters are created uninitialised (DETR level embeddings): garbage, even NaN
    model.eval()
    h, w = 320, 256  # DINO picks 900 queries among the encoder tokens: the input must have that many
    sample = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w), scale_factor=(1., 1.),
                                         batch_input_shape=(h, w)))
    if cfg.model.type == 'BiradsClassifier':  # it classifies given boxes
        from mmengine.structures import InstanceData
        sample.proposals = InstanceData(bboxes=torch.tensor([[10., 20., 90., 120.], [100., 100., 140., 180.]]))
    data = model.data_preprocessor(dict(inputs=[torch.rand(3, h, w) * 255], data_samples=[sample]), training=False)
    with torch.no_grad():
        out = model.predict(data['inputs'], data['data_samples'], rescale=True)
    inst = out[0].pred_instances
    assert len(inst.scores) > 0, 'no box to check'  # every score is kept (score_thr 0 below)
    assert inst.bboxes.shape == (len(inst.scores), 4) and len(inst.labels) == len(inst.scores)
    assert 'birads' in os.path.basename(path)  # every shipped config predicts a BI-RADS per box
    assert inst.birads_scores.shape == (len(inst.scores), 3)
    torch.testing.assert_close(inst.birads_scores.sum(1), torch.ones(len(inst.scores)))
    assert set(inst.birads.tolist()) <= {3, 4, 5}
    assert int(inst.labels.max()) < len(cfg.train_dataloader.dataset.get('metainfo', {}).get('classes', range(10)))


def _no_pretrained(node):
    """Every ``Pretrained`` init_cfg dropped: the rest of each module's initialisation still runs."""
    if isinstance(node, dict):
        init = node.get('init_cfg')
        if isinstance(init, dict) and init.get('type') == 'Pretrained':
            node['init_cfg'] = None
        elif isinstance(init, list):
            node['init_cfg'] = [i for i in init if not (isinstance(i, dict) and i.get('type') == 'Pretrained')]
        for value in node.values():
            _no_pretrained(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _no_pretrained(value)


def _keep_every_box(model_cfg):
    """Score threshold 0 wherever a test_cfg has one: a random-init model then still returns boxes to check."""
    for node in [model_cfg.get('test_cfg') or {}] + list((model_cfg.get('test_cfg') or {}).values()):
        if isinstance(node, dict) and 'score_thr' in node:
            node['score_thr'] = 0.0


def test_inheritance_depth_at_most_three():
    import ast
    import re

    def depth(path):
        tree = ast.parse(open(path).read())
        bases = []
        for node in tree.body:
            if isinstance(node, ast.Assign) and getattr(node.targets[0], 'id', '') == '_base_':
                v = ast.literal_eval(node.value)
                bases = [v] if isinstance(v, str) else list(v)
        own = [os.path.normpath(os.path.join(os.path.dirname(path), b)) for b in bases if not re.match(r'\w+::', b)]
        return 1 + max([depth(b) for b in own], default=0)

    depths = {os.path.relpath(p, REPO): depth(p) for p in CONFIGS}
    assert max(depths.values()) <= 3, depths
    assert max(depths.values()) == 3  # the check walks the bases (the demo families are three deep)
