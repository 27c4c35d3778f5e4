"""What the weights-only unpickler may build from a ``.pth`` file, beyond tensors and containers.

Only the Python objects that the authors' releases and MMEngine 0.10.7 checkpoints contain:

* ``argparse.Namespace``: the authors' training checkpoints store their ``args``;
* ``mmengine.logging.HistoryBuffer``: MMEngine's ``message_hub`` state (logged scalars);
* numpy's ``_reconstruct``/``ndarray``/``scalar``/``dtype`` and the numeric ``np.dtypes`` classes:
  the histories inside ``HistoryBuffer`` and numpy scalars in ``message_hub.runtime_info``;
* ``builtins.getattr``, resolved to :func:`restricted_getattr`: ``HistoryBuffer`` keeps its
  ``statistics_methods`` (``HistoryBuffer.min``/``max``/``current``/``mean``) in the instance,
  and pickle's protocol 2 (``torch.save``'s default) writes a method as
  ``getattr(HistoryBuffer, 'mean')``. The stand-in resolves exactly those names on exactly that
  class and refuses every other ``getattr``, so no chain of attribute lookups can reach a
  module, a function's globals or ``__builtins__``.

The list is applied per call (:func:`allowed`), never added to torch's process-wide list.
"""
import argparse

import torch

from .patches import history_buffer_statistics


class ForbiddenGetattr(Exception):
    """A ``getattr`` in a pickle outside what :func:`restricted_getattr` resolves."""

    def __init__(self, what):
        super().__init__(what)
        self.what = what


def restricted_getattr(obj, name, *default):
    """``getattr`` for unpickling: only ``HistoryBuffer.<statistics method>`` (see module doc)."""
    from mmengine.logging import HistoryBuffer
    if obj is HistoryBuffer and name in history_buffer_statistics() and not default:
        return getattr(HistoryBuffer, name)
    shown = getattr(obj, '__qualname__', type(obj).__name__)
    raise ForbiddenGetattr(f'getattr({shown}, {name!r})')


def allowed_globals():
    """The allow-list, in ``torch.serialization.add_safe_globals`` form."""
    import numpy as np
    from mmengine.logging import HistoryBuffer
    core = getattr(np, '_core', None) or np.core
    numeric = (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32,
               np.uint64, np.float16, np.float32, np.float64)
    dtype_classes = sorted({type(np.dtype(t)) for t in numeric}, key=lambda c: c.__name__)
    return [argparse.Namespace, HistoryBuffer, core.multiarray.scalar,
            core.multiarray._reconstruct, np.ndarray, np.dtype,
            (restricted_getattr, 'builtins.getattr'), *dtype_classes]


def allowed():
    """Context in which ``torch.load(weights_only=True)`` accepts :func:`allowed_globals`."""
    return torch.serialization.safe_globals(allowed_globals())


def is_allowed_name(name):
    """Whether a pickle's global ``module.name`` is a torch object or on the allow-list."""
    allowed_names = {f'{getattr(g, "__module__", "")}.{getattr(g, "__qualname__", "")}'
                     for g in allowed_globals() if not isinstance(g, tuple)}
    return (name.startswith('torch.') or name in allowed_names
            or name in ('collections.OrderedDict', 'builtins.getattr'))
