"""Export-safe forward passes: what the mixers compute, with every size kept in the graph.

The TorchScript exporter records tensor operations, but Python decisions taken on sizes are
frozen at the size it traced. Most of the backbone only does arithmetic on sizes (recorded);
the exceptions are handled here or by a check of ``torch.onnx.is_in_onnx_export()`` where
they are made:

* Swin decides in Python whether a block shifts (no shift when the map fits one window) and
  builds its shift gather and mask from Python ints. :func:`swin_forward` computes the shift as
  a tensor and derives the token order and the mask from it, so one graph serves every size.
* The attention mixers run their readable reference (``use_reference_attention``): plain
  matmul + softmax, and Halo's unfold-based key mask instead of the size-cached border table.
* ``pad_to_multiple`` always pads, the PVT position table is always resized, the CPU MLP
  chunking is off and DCNv3 runs its GridSample reference (checks in those places).
"""
import contextlib
import types

import torch

from ..models.mixers import ShiftedWindowAttention
from ..models.utils import attention, pad_to_multiple, use_reference_attention, window_merge
from ..models.utils import window_partition


def swin_shift(mixer, H, W):
    """The shift of ``mixer`` on an ``(H, W)`` map, as a 0-dim int64 tensor (``H``, ``W`` may be
    traced sizes): 0 when the map fits one window and ``shift_single_window`` is False."""
    shift = torch.tensor(mixer.shift_size)
    if mixer.shift_single_window:
        return shift
    M = mixer.window_size
    fits = torch.as_tensor(H <= M) & torch.as_tensor(W <= M)
    return torch.where(fits, torch.zeros_like(shift), shift)


def shifted_window_order(Hp, Wp, window, shift):
    """As :func:`stm_mm.models.utils.windows.shifted_window_order` for a tensor ``shift``:
    ``(order, inverse)``, int64 ``(Hp * Wp,)``, built from index arithmetic only."""
    ys, xs = torch.arange(Hp), torch.arange(Wp)
    rolled = ((ys[:, None] + shift) % Hp) * Wp + (xs[None, :] + shift) % Wp  # roll by -shift
    order = window_partition(rolled[None, :, :, None], window).reshape(-1)
    # token (y, x) sits at the rolled position (y - shift, x - shift), in window-major order
    ry, rx = (ys - shift) % Hp, (xs - shift) % Wp
    window_index = (ry[:, None] // window) * (Wp // window) + rx[None, :] // window
    inverse = window_index * window * window + (ry[:, None] % window) * window + rx % window
    return order, inverse.reshape(-1)


def swin_shift_mask(Hp, Wp, window, shift):
    """As :func:`stm_mm.models.utils.swin_shift_mask` for a tensor ``shift`` (all zeros when it
    is 0): ``(nW, M*M, M*M)``, regions labelled by counting the boundaries passed."""
    def region(size):
        position = torch.arange(size)
        return (position >= size - window).long() + (position >= size - shift).long()

    labels = region(Hp)[:, None] * 3 + region(Wp)[None, :]
    labels = window_partition(labels[None, :, :, None], window)[0, :, :, 0]  # (nW, M*M)
    return (labels[:, :, None] != labels[:, None, :]).float() * -100.0


def swin_forward(mixer, x):
    """:class:`ShiftedWindowAttention` forward for export (same result as ``mixer(x)``)."""
    B, H, W, C = x.shape
    M, n = mixer.window_size, mixer.num_heads
    x, _ = pad_to_multiple(x, M)
    Hp, Wp = x.shape[1:3]
    bias = mixer.position_bias()
    if mixer.shift_size:
        shift = swin_shift(mixer, H, W)
        order, inverse = shifted_window_order(Hp, Wp, M, shift)
        windows = x.reshape(B, Hp * Wp, C).index_select(1, order).view(B, -1, M * M, C)
        bias = bias + swin_shift_mask(Hp, Wp, M, shift)[:, None]
    else:
        windows = window_partition(x, M)
    nW = windows.shape[1]
    qkv = mixer.qkv(windows).view(B, nW, M * M, 3, n, C // n).permute(3, 0, 1, 4, 2, 5)
    q, k, v = qkv.unbind(0)
    out = attention(q, k, v, bias, mixer.scale)
    out = mixer.proj(out.transpose(2, 3).reshape(B, nW, M * M, C))
    if mixer.shift_size:
        x = out.reshape(B, Hp * Wp, C).index_select(1, inverse).view(B, Hp, Wp, C)
    else:
        x = window_merge(out, Hp, Wp, M)
    return x[:, :H, :W]


EXPORT_FORWARDS = {ShiftedWindowAttention: swin_forward}


@contextlib.contextmanager
def export_safe(model):
    """Within the context ``model`` runs its export-safe paths: the reference attention, and the
    forwards of :data:`EXPORT_FORWARDS` on its modules of those classes."""
    patched = []
    for module in model.modules():
        forward = EXPORT_FORWARDS.get(type(module))
        if forward is not None:
            module.forward = types.MethodType(forward, module)
            patched.append(module)
    try:
        with use_reference_attention():
            yield model
    finally:
        for module in patched:
            del module.forward
