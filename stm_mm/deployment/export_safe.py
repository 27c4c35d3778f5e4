"""Export-safe forward passes: what the mixers compute, with every size kept in the graph.

The TorchScript exporter records tensor operations, but Python decisions taken on sizes are
frozen at the size it traced. Most of the backbone only does arithmetic on sizes (recorded);
the exceptions are handled here or by a check of ``torch.onnx.is_in_onnx_export()`` where
they are made:

* Swin decides in Python whether a block shifts (no shift when the map fits one window) and
  builds its shift gather and mask from Python ints. Its ``'export'`` implementation
  (:meth:`ShiftedWindowAttention.forward_export`, its spec's ``export_impl``, forced here
  through :func:`stm_mm.ops.impl_switch.forced_impls`) computes the shift as a tensor and
  derives the token order and the mask from it, so one graph serves every size.
* The attention mixers run their readable reference (``use_reference_attention``): plain
  matmul + softmax, and Halo's unfold-based key mask instead of the size-cached border table.
* ``pad_to_multiple`` always pads, the PVT position table is always resized, the CPU MLP
  chunking is off and DCNv3 runs its GridSample reference (checks in those places).
"""
import contextlib

from ..models.mixers import mixer_specs
from ..models.utils import use_reference_attention
from ..ops.impl_switch import forced_impls


@contextlib.contextmanager
def export_safe():
    """Within the context the mixers run their export-safe paths: each spec's ``export_impl``
    (Swin's ``'export'``) and the reference attention."""
    exported = {name: spec.export_impl for name, spec in mixer_specs().items()
                if spec.export_impl}
    with forced_impls(**exported), use_reference_attention():
        yield
