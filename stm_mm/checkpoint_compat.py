"""Let MMEngine 0.10.7 checkpoints load under torch's ``weights_only=True`` default (torch >= 2.6).

MMEngine's ``load_from_local`` calls ``torch.load`` without ``weights_only``; its checkpoints hold
a ``HistoryBuffer`` and numpy scalars/arrays in ``message_hub``. Allow-listing exactly those
types keeps ``--resume`` and ``load_from`` working without turning the safety check off.
"""
import builtins

import numpy as np
import torch


def allow_mmengine_checkpoints():
    from mmengine.logging import HistoryBuffer
    core = getattr(np, '_core', None) or np.core
    safe = [HistoryBuffer, core.multiarray.scalar, core.multiarray._reconstruct, np.ndarray,
            np.dtype, builtins.getattr]
    safe += [getattr(np.dtypes, name) for name in np.dtypes.__all__]
    torch.serialization.add_safe_globals(safe)
