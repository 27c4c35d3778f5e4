"""Swin shifted-window attention."""
import torch
import torch.nn as nn

from ...ops.impl_switch import forced_impl, requested_impl, resolve_triton_impl
from ..arch_zoo import WINDOW_ATTENTION_PRESETS
from ..utils import (attention, pad_to_multiple, relative_position_index, swin_shift_mask,
                     window_merge, window_partition)
from ..utils.attention import reference_attention, reference_enabled
from ..utils.windows import (shifted_window_order, traced_shifted_window_order,
                             traced_swin_shift_mask)
from .base import TokenMixer
from .spec import MixerSpec, register_mixer

SPEC = MixerSpec(name='swin', label='U-Swin', signature='mixer.relative_position_bias_table',
                 flops='total', presets=WINDOW_ATTENTION_PRESETS,
                 impls=('sdpa', 'triton', 'reference'), export_impl='export')
IMPLS = SPEC.impls + (SPEC.export_impl, )


@register_mixer(SPEC)
class ShiftedWindowAttention(TokenMixer):
    """Window attention with relative position bias; odd blocks shift the windows by ``M // 2``.

    The map is zero-padded at the bottom/right to multiples of the window ``M`` (padding tokens are
    not masked, as in the authors' detection backbone), rolled by ``-shift`` for shifted blocks,
    cut into ``M x M`` windows, attended with ``bias = table[index] (+ shift mask)``, merged,
    rolled back and cropped.

    Args:
        dim: channels C. num_heads: heads. block_index: odd blocks shift.
        window_size: M (7).
        shift_single_window: whether a shifted block still shifts when the whole map fits in one
            window. False reproduces the authors' classification model (a 7x7 stage never shifts);
            True their detection backbone (odd blocks shift in every stage).
        impl: ``'triton'`` (one fused kernel reading the qkv map at the rolled positions, bias and
            mask from index arithmetic: :mod:`stm_mm.ops.triton.window_attention`), ``'sdpa'``
            (roll + partition as one gather, PyTorch's fused attention), ``'reference'`` (roll,
            partition, step-by-step attention: what :func:`use_reference_attention` selects),
            ``'export'`` (every size-dependent decision as tensor arithmetic, so a traced ONNX
            graph serves every size: what the exporter forces, see
            :func:`stm_mm.ops.impl_switch.forced_impls`), or ``'auto'``/None
            (``$STM_MM_SWIN_IMPL``, else Triton on CUDA when available, else
            sdpa); resolved per call from the input's device.
    Shapes: ``(B, H, W, C)`` -> ``(B, H, W, C)``.
    """
    block_norm_eps = 1e-6

    def __init__(self, dim, num_heads, stage_index=0, block_index=0, window_size=7,
                 shift_single_window=False, impl=None):
        super().__init__()
        if impl is not None:
            requested_impl('swin', impl, IMPLS)  # a bad value fails here, not at the first call
        self.impl = impl
        self.num_heads = num_heads
        self.window_size = window_size
        self.shift_size = window_size // 2 if block_index % 2 == 1 else 0
        self.shift_single_window = shift_single_window
        self.scale = (dim // num_heads)**-0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window_size - 1)**2, num_heads))
        self.register_buffer(
            'relative_position_index', relative_position_index(window_size), persistent=False)
        self.init_weights()

    def init_weights(self):
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def shift_for(self, H, W):
        """The shift this block applies to an ``(H, W)`` map."""
        fits_one_window = H <= self.window_size and W <= self.window_size
        if fits_one_window and not self.shift_single_window:
            return 0
        return self.shift_size

    def position_bias(self):
        """Relative position bias ``(heads, M*M, M*M)``."""
        bias = self.relative_position_bias_table[self.relative_position_index]
        return bias.permute(2, 0, 1)

    def traced_shift(self, H, W):
        """:meth:`shift_for` as a 0-dim int64 tensor (``H``, ``W`` may be traced sizes)."""
        shift = torch.tensor(self.shift_size)
        if self.shift_single_window:
            return shift
        M = self.window_size
        fits = torch.as_tensor(H <= M) & torch.as_tensor(W <= M)
        return torch.where(fits, torch.zeros_like(shift), shift)

    def resolve_impl(self, device):
        """The implementation this block runs on ``device`` (see ``impl``)."""
        if reference_enabled() and forced_impl('swin') is None:
            return 'reference'
        return resolve_triton_impl('swin', self.impl, IMPLS, device, portable='sdpa')

    def forward(self, x):
        impl = self.resolve_impl(x.device)
        if impl == 'export':
            return self.forward_export(x)
        B, H, W, C = x.shape
        M, n = self.window_size, self.num_heads
        shift = self.shift_for(H, W)
        x, _ = pad_to_multiple(x, M)
        Hp, Wp = x.shape[1:3]
        if impl == 'triton':  # qkv on the padded map; the kernel rolls and partitions by indexing
            from ...ops.triton.window_attention import window_attention
            out = window_attention(self.qkv(x), self.relative_position_bias_table, n, M, shift,
                                   self.scale)
            return self.proj(out[:, :H, :W])
        gather = shift and impl == 'sdpa'
        if gather:  # roll + partition as one gather
            order, inverse = shifted_window_order(Hp, Wp, M, shift, x.device)
            windows = x.reshape(B, Hp * Wp, C).index_select(1, order).view(B, -1, M * M, C)
        else:
            if shift:
                x = torch.roll(x, shifts=(-shift, -shift), dims=(1, 2))
            windows = window_partition(x, M)  # (B, nW, M*M, C)
        nW = windows.shape[1]
        qkv = self.qkv(windows).view(B, nW, M * M, 3, n, C // n).permute(3, 0, 1, 4, 2, 5)
        q, k, v = qkv.unbind(0)  # (B, nW, n, M*M, d)
        bias = self.position_bias()
        if shift:
            bias = bias + swin_shift_mask(Hp, Wp, M, shift, x.device)[:, None]
        attend = attention if impl == 'sdpa' else reference_attention
        out = attend(q, k, v, bias, self.scale)
        out = self.proj(out.transpose(2, 3).reshape(B, nW, M * M, C))
        if gather:
            x = out.reshape(B, Hp * Wp, C).index_select(1, inverse).view(B, Hp, Wp, C)
        else:
            x = window_merge(out, Hp, Wp, M)
            if shift:
                x = torch.roll(x, shifts=(shift, shift), dims=(1, 2))
        return x[:, :H, :W]

    def forward_export(self, x):
        """The ``'export'`` implementation: the shift, the token order and the mask are tensors
        computed from the (traced) sizes, so one graph fits every size; same result."""
        B, H, W, C = x.shape
        M, n = self.window_size, self.num_heads
        x, _ = pad_to_multiple(x, M)
        Hp, Wp = x.shape[1:3]
        bias = self.position_bias()
        if self.shift_size:
            shift = self.traced_shift(H, W)
            order, inverse = traced_shifted_window_order(Hp, Wp, M, shift)
            windows = x.reshape(B, Hp * Wp, C).index_select(1, order).view(B, -1, M * M, C)
            bias = bias + traced_swin_shift_mask(Hp, Wp, M, shift)[:, None]
        else:
            windows = window_partition(x, M)
        nW = windows.shape[1]
        qkv = self.qkv(windows).view(B, nW, M * M, 3, n, C // n).permute(3, 0, 1, 4, 2, 5)
        q, k, v = qkv.unbind(0)
        out = attention(q, k, v, bias, self.scale)
        out = self.proj(out.transpose(2, 3).reshape(B, nW, M * M, C))
        if self.shift_size:
            x = out.reshape(B, Hp * Wp, C).index_select(1, inverse).view(B, Hp, Wp, C)
        else:
            x = window_merge(out, Hp, Wp, M)
        return x[:, :H, :W]
