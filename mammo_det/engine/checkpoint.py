"""Resuming MMEngine checkpoints under torch >= 2.6 without turning ``weights_only`` off.

torch 2.6 made ``torch.load(weights_only=True)`` the default, and an MMEngine checkpoint holds more than
tensors (the message hub's HistoryBuffers, numpy arrays and scalars), so ``resume`` fails with
"Weights only load failed". Allow-listing exactly those types keeps the safe unpickler for every file,
including checkpoints a user did not produce.
"""
from __future__ import annotations

import numpy as np
import torch


def _safe_types() -> list:
    from mmengine.logging.history_buffer import HistoryBuffer

    try:
        from numpy._core.multiarray import _reconstruct, scalar  # numpy >= 2
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct, scalar
    dtypes = [type(np.dtype(t)) for t in ('float64', 'float32', 'float16', 'int64', 'int32', 'int16', 'int8',
                                          'uint8', 'uint16', 'uint32', 'uint64', 'bool')]
    return [HistoryBuffer, _reconstruct, scalar, np.ndarray, np.dtype, *dtypes]


def allow_mmengine_checkpoints() -> None:
    """Adds the types MMEngine checkpoints contain to torch's weights-only allow-list (idempotent)."""
    if hasattr(torch.serialization, 'add_safe_globals'):
        torch.serialization.add_safe_globals(_safe_types())


allow_mmengine_checkpoints()
