"""Building MMEngine Runners for training and testing: what ``tools/train.py``, ``tools/test.py`` and
``mammo-det train|test`` share."""
from __future__ import annotations

import os.path as osp
from typing import Optional, Sequence


def load_config(config: str, work_dir: Optional[str] = None, cfg_options: Optional[dict] = None,
                data_root: Optional[str] = None):
    """Reads a config, applies ``--cfg-options`` and an optional data root (all loaders and evaluators)."""
    from mmengine.config import Config

    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if data_root:
        set_data_root(cfg, data_root)
    cfg.work_dir = work_dir or cfg.get('work_dir') or osp.join('work_dirs', osp.splitext(osp.basename(config))[0])
    return cfg


def set_data_root(cfg, data_root: str) -> None:
    """Points every dataloader and MammoMetric of ``cfg`` at a converted dataset folder."""
    data_root = data_root.rstrip('/') + '/'
    for split in ('train', 'val', 'test'):
        loader = cfg.get(f'{split}_dataloader')
        if loader:
            ds = loader['dataset']
            ds = ds.get('dataset', ds)  # wrappers (RepeatDataset, ...)
            ds['data_root'] = data_root
        ev = cfg.get(f'{split}_evaluator')
        if ev and ev.get('type') == 'MammoMetric':
            ev['ann_file'] = data_root + f'annotations/instances_{split}.json'


def build_train_runner(config: str, work_dir: Optional[str] = None, launcher: str = 'none', resume: bool = False,
                       amp: bool = False, auto_scale_lr: bool = False, cfg_options: Optional[dict] = None,
                       data_root: Optional[str] = None, load_from: Optional[str] = None):
    """A Runner ready to ``train()``; on CPU with a distributed launcher the gloo group is started first.

    Args:
        resume: continue from the last checkpoint in ``work_dir`` (iteration, optimizer, schedule, RNG).
        amp: mixed precision (``AmpOptimWrapper``); prefer the ``*-amp-*`` configs, which also keep IoUs in fp32.
    """
    from mmengine.runner import Runner

    from mammo_det.engine import init_dist_for_launcher

    cfg = load_config(config, work_dir, cfg_options, data_root)
    cfg.launcher = launcher
    if amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if auto_scale_lr:
        cfg.auto_scale_lr = dict(cfg.get('auto_scale_lr', {}), enable=True)
    if resume:
        cfg.resume = True
        cfg.load_from = None
    elif load_from:
        cfg.load_from = load_from
    init_dist_for_launcher(launcher)
    return Runner.from_cfg(cfg)


def build_test_runner(config: str, checkpoint: str, work_dir: Optional[str] = None, launcher: str = 'none',
                      out: Optional[str] = None, cfg_options: Optional[dict] = None, data_root: Optional[str] = None,
                      show_dir: Optional[str] = None):
    """A Runner ready to ``test()`` with ``checkpoint``; ``out`` makes the metric write COCO results there.

    ``out`` gets a COCO results list whose entries carry ``birads`` and ``birads_scores`` when the model
    predicts them, boxes in the converted image's pixels; ``<out stem>_eval/`` gets the metric's report files.
    """
    from mmengine.runner import Runner

    from mammo_det.engine import init_dist_for_launcher

    cfg = load_config(config, work_dir, cfg_options, data_root)
    cfg.launcher = launcher
    cfg.load_from = checkpoint
    if out:
        evs = cfg.test_evaluator if isinstance(cfg.test_evaluator, (list, tuple)) else [cfg.test_evaluator]
        for ev in evs:
            if ev.get('type') == 'MammoMetric':
                ev['results_file'] = out
                ev['report_dir'] = osp.splitext(out)[0] + '_eval'
    if show_dir:
        cfg.default_hooks.visualization.update(draw=True, test_out_dir=show_dir)
    init_dist_for_launcher(launcher)
    return Runner.from_cfg(cfg)


def parse_cfg_options(items: Optional[Sequence[str]]) -> Optional[dict]:
    """``key=value`` pairs (values as Python literals when they parse) -> dict for ``merge_from_dict``."""
    if not items:
        return None
    from mmengine.config import DictAction
    import argparse
    ns = argparse.Namespace()
    DictAction(option_strings=['--cfg-options'], dest='opts')(None, ns, list(items))
    return ns.opts

