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
from typing import Iterator, Optional, Tuple, Union

from mammo_det.errors import UserError

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


def expand_wrapped(model) -> dict:
    """``model`` (a model config, in place) with a ``BiradsDetector``'s zoo model read into ``detector`` (its
    ``detector_options`` merged in), so that the whole model can be edited like any other; returns the dict whose
    ``backbone`` is the model's."""
    if model.get('type') != 'BiradsDetector':
        return model
    model['detector'] = wrapped_model_config(model['detector'], model.pop('detector_options', None))
    if model.get('num_classes') is not None:  # the count the wrapper would set, now stated in the model itself
        set_class_counts(model['detector'], model['num_classes'])
    return model['detector']


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


class ClassCountError(UserError, ValueError):
    """A config's class count disagrees with the dataset's classes."""


# Heads whose ``num_classes`` is not the finding types: class-agnostic proposals, and stuff segmentation.
_OTHER_CLASS_COUNTS = ('rpn_head', 'semantic_head')


def class_counts(node, path: str = 'model') -> Iterator[Tuple[str, dict]]:
    """(dotted path, dict) of every dict under ``node`` (a model config) that sets ``num_classes`` for the finding
    types: every head of every stage, the RPN (one class-agnostic class) and semantic heads left out."""
    if isinstance(node, dict):
        if 'num_classes' in node:
            yield path, node
        for key, value in node.items():
            if key not in _OTHER_CLASS_COUNTS:
                yield from class_counts(value, f'{path}.{key}')
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from class_counts(value, f'{path}[{i}]')


def check_class_counts(explicit, num_classes: int, where: str = 'BiradsDetector') -> None:
    """Raises :class:`ClassCountError` where ``explicit`` (the options a user wrote, e.g. a ``BiradsDetector``'s
    ``detector_options``) states another class count than ``num_classes``; the message names the key, its value
    and the dataset's count."""
    for path, node in class_counts(explicit or {}, where):
        if node['num_classes'] != num_classes:
            raise ClassCountError(f'{path}.num_classes = {node["num_classes"]!r}, but the dataset has '
                                  f'{num_classes} classes: remove the setting (the wrapper sets every head from '
                                  'the dataset) or make them agree')


def set_class_counts(model, num_classes: int, explicit=None, where: str = 'BiradsDetector') -> None:
    """Sets ``num_classes`` of every head under ``model`` (a model config, in place) to ``num_classes``, after
    :func:`check_class_counts` of ``explicit``."""
    check_class_counts(explicit, num_classes, where)
    for _, node in class_counts(model):
        node['num_classes'] = num_classes
