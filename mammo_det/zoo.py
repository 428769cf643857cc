"""MMDetection zoo configs as this project uses them: the model of a zoo config file, and its pretrained checkpoints
named by their download URL.

Zoo configs name ImageNet backbones by scheme (``torchvision://resnet50``, ``open-mmlab://resnext101_32x4d``).
MMEngine resolves ``torchvision://`` by importing torchvision, which this project does not install (and which does
not import beside every torch build); both schemes only map a name to an http(s) URL that MMEngine then loads
from the torch hub cache or downloads. The maps ship with MMEngine (``mmengine/hub/*.json``), so the same URL is
found here without torchvision, and MMEngine, the offline check and ``mammo-det weights`` all see one URL.
No torch import here.
"""
from __future__ import annotations

import copy
import importlib.util
import json
import os
from functools import lru_cache
from typing import Optional, Union

# scheme -> the MMEngine hub file that maps its names to URLs
SCHEME_MAPS = {'torchvision://': 'torchvision_0.12.json', 'open-mmlab://': 'openmmlab.json',
               'openmmlab://': 'openmmlab.json'}


@lru_cache(maxsize=None)
def _hub_map(file_name: str) -> dict:
    spec = importlib.util.find_spec('mmengine')
    path = os.path.join(spec.submodule_search_locations[0], 'hub', file_name)
    with open(path) as fh:
        return json.load(fh)


def resolve_url(url: str) -> str:
    """The http(s) URL behind ``torchvision://NAME`` or ``open-mmlab://NAME``; any other string unchanged (a name
    the map lacks too: the weights check then says what is wrong)."""
    for scheme, file_name in SCHEME_MAPS.items():
        if url.startswith(scheme):
            return _hub_map(file_name).get(url[len(scheme):], url)
    return url


def pretrained_inits(node):
    """Every ``init_cfg`` entry under ``node`` (a model config) that names a checkpoint, those of the zoo model a
    ``BiradsDetector`` wraps by file name included (from a copy: the wrapper reads its file itself)."""
    if isinstance(node, dict):
        if node.get('type') == 'BiradsDetector' and isinstance(node.get('detector'), str):
            yield from pretrained_inits(wrapped_model_config(node['detector'], node.get('detector_options')))
        init = node.get('init_cfg')
        for item in init if isinstance(init, list) else [init]:
            if isinstance(item, dict) and isinstance(item.get('checkpoint'), str):
                yield item
        for value in node.values():
            yield from pretrained_inits(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from pretrained_inits(value)


def resolve_checkpoints(node):
    """Rewrites, in place, every ``init_cfg.checkpoint`` under ``node`` (a model config) to its http(s) URL."""
    for item in pretrained_inits(node):
        item['checkpoint'] = resolve_url(item['checkpoint'])
    return node


def wrapped_model_config(detector: Union[str, dict], options: Optional[dict] = None):
    """The model of a config file (``mmdet::...`` or a path) or the model dict given, with ``options`` merged in
    and its checkpoints named by URL; a ConfigDict (heads read their test_cfg by attribute)."""
    from mmengine.config import Config

    if isinstance(detector, str):
        # ``mmdet::...`` as a ``_base_`` (Config.fromfile takes only paths), so it resolves as in any config file.
        cfg = (Config.fromstring(f'_base_ = {detector!r}\n', '.py') if '::' in detector
               else Config.fromfile(detector))
        model = cfg.get('model')
        if model is None:
            raise ValueError(f'BiradsDetector: {detector} has no model')
    else:
        model = copy.deepcopy(detector)
    cfg = Config(dict(model=model))
    if options:
        cfg.merge_from_dict({f'model.{k}': v for k, v in options.items()})
    return resolve_checkpoints(cfg.model)
