"""Resuming MMEngine checkpoints under torch >= 2.6 without turning ``weights_only`` off.

torch 2.6 made ``torch.load(weights_only=True)`` the default. An MMEngine checkpoint holds more than tensors:
the message hub's HistoryBuffers (whose pickled state includes functions, reached through ``getattr``),
numpy arrays and scalars, and a ``Counter`` in the step schedulers, so ``resume`` fails with "Weights only
load failed". Allowing ``getattr`` would let a crafted file call any method of an allowed object, so instead:

* :class:`SafeCheckpointHook` stores each HistoryBuffer as plain arrays when saving and rebuilds it when
  loading;
* :func:`allow_mmengine_checkpoints` allow-lists exactly the remaining plain data types: numpy arrays,
  scalars and dtypes, and ``collections.Counter``.

Every checkpoint, also one a user did not produce, keeps going through torch's safe unpickler.
"""
from __future__ import annotations

import collections

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer
from mmengine.registry import HOOKS

_TAG = '__mammo_det_history_buffer__'


def _safe_types() -> list:
    try:
        from numpy._core.multiarray import _reconstruct, scalar  # numpy >= 2
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct, scalar
    dtypes = [type(np.dtype(t)) for t in ('float64', 'float32', 'float16', 'int64', 'int32', 'int16', 'int8',
                                          'uint8', 'uint16', 'uint32', 'uint64', 'bool')]
    return [_reconstruct, scalar, np.ndarray, np.dtype, *dtypes, collections.Counter]


def allow_mmengine_checkpoints() -> None:
    """Adds the plain data types MMEngine checkpoints contain to torch's weights-only allow-list."""
    if hasattr(torch.serialization, 'add_safe_globals'):
        torch.serialization.add_safe_globals(_safe_types())


@HOOKS.register_module()
class SafeCheckpointHook(Hook):
    """Makes checkpoints loadable with ``weights_only=True``: HistoryBuffers saved as arrays, rebuilt on load."""

    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        # Where the hook is built, before the Runner loads or resumes any checkpoint: the allow-list changes
        # torch's global state, so it happens only in processes that build this hook, not on import.
        allow_mmengine_checkpoints()

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        hub = checkpoint.get('message_hub')
        if not hub or 'log_scalars' not in hub:
            return
        scalars = {}
        for key, buf in hub['log_scalars'].items():
            if isinstance(buf, HistoryBuffer):
                log, count = buf.data
                buf = {_TAG: True, 'log': log, 'count': count, 'max_length': buf.max_length}
            scalars[key] = buf
        # A new dict: the live message hub keeps its HistoryBuffers.
        checkpoint['message_hub'] = dict(hub, log_scalars=scalars)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        hub = checkpoint.get('message_hub')
        if not hub or 'log_scalars' not in hub:
            return
        for key, buf in list(hub['log_scalars'].items()):
            if isinstance(buf, dict) and buf.get(_TAG):
                hub['log_scalars'][key] = HistoryBuffer(list(buf['log']), list(buf['count']), buf['max_length'])

