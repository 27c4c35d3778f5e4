"""Halo attention (HaloNet): blocked local self-attention with a halo of neighbouring keys."""
import torch
import torch.nn as nn

from ...ops.impl_switch import requested_impl, resolve_triton_impl
from ..arch_zoo import WINDOW_ATTENTION_PRESETS
from ..utils import attention, pad_to_multiple, reference_attention
from ..utils.attention import masked_fill_value, reference_enabled
from ..utils.explicit_attention import axis_bias_attention
from ..utils.windows import (halo_border_logits, halo_key_padding_mask, overlapping_windows,
                             overlapping_windows_reference)
from .base import TokenMixer
from .spec import CHANNELS_LAST, CONV1X1, MixerSpec, register_mixer


def make_divisible(value, divisor=8):
    """Round to the nearest multiple of ``divisor`` (at least ``divisor``), never below 90%."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


SPEC = MixerSpec(
    name='halo', label='U-HaloNet', signature='mixer.height_rel', flops='paper_local',
    presets=WINDOW_ATTENTION_PRESETS,
    keys=(('gamma_1', 'gamma1', CHANNELS_LAST), ('gamma_2', 'gamma2', CHANNELS_LAST),
          ('attn.pos_embed.height_rel', 'mixer.height_rel'),
          ('attn.pos_embed.width_rel', 'mixer.width_rel'),
          ('attn.kv.weight', 'mixer.kv.weight', CONV1X1)),
    impls=('sdpa', 'triton', 'reference'))
IMPLS = SPEC.impls


@register_mixer(SPEC)
class HaloAttention(TokenMixer):
    """Halo attention with query-related relative position embedding.

    The map is cut into ``block x block`` query blocks; each attends to the ``w x w`` window
    (``w = block + 2 * halo``) centred on it. Keys falling in the zero border outside the map are
    masked; inputs whose sides are not multiples of ``block`` are zero-padded at the bottom/right
    (those padding tokens act as zero keys/values, as in the authors' detection backbone) and the
    output is cropped back.

    Logit of query ``(qy, qx)`` and key ``(ky, kx)`` (window coordinates) for head ``m``:
    ``scale * <q, k> + <q, height_rel[ky - qy + w - 1]> + <q, width_rel[kx - qx + w - 1]>``
    with the unscaled query ``q``.

    Args:
        dim: channels C. num_heads: heads n.
        block_size: query block side b (7). halo_size: halo h (3; 1 is U-HaloNet-1px).
        query_position: ``'center'`` (the window extends h on every side) or ``'top_left'``
            (the query block sits at the window's top-left corner, the window extends 2h to the
            bottom/right: U-HaloNet-Shift, same window size).
        switch: odd blocks use no halo (plain blocked attention, window b), i.e. halos are
            exchanged every second block (U-HaloNet-Switch).
        stage_index: unused. block_index: parity used by ``switch``.
        impl: ``'triton'`` (fused kernels reading keys/values straight from the map),
            ``'sdpa'`` (windows copied out, SDPA for inference, :func:`axis_bias_attention`
            for training), ``'reference'`` (the readable path of
            :func:`use_reference_attention`), or None: ``$STM_MM_HALO_IMPL``, else ``'auto'``
            (Triton on CUDA when available, else ``'sdpa'``), resolved per call.
    Shapes: ``(B, H, W, C)`` -> ``(B, H, W, C)``.
    """

    def __init__(self, dim, num_heads, stage_index=0, block_index=0, block_size=7, halo_size=3,
                 query_position='center', switch=False, impl=None):
        super().__init__()
        requested_impl('halo', impl, IMPLS)  # fail early on a bad name
        self.impl = impl
        if query_position not in ('center', 'top_left'):
            raise ValueError(f"query_position must be 'center' or 'top_left', "
                             f'got {query_position!r}')
        self.num_heads = num_heads
        self.block_size = block_size
        self.halo_size = 0 if switch and block_index % 2 == 1 else halo_size
        halo_size = self.halo_size
        # zero padding of the key map before/after each side
        self.pad_before = halo_size if query_position == 'center' else 0
        self.pad_after = 2 * halo_size - self.pad_before
        self.window_size = block_size + 2 * halo_size
        self.dim_qk = make_divisible(dim, 8) // num_heads
        self.dim_v = dim // num_heads
        self.scale = self.dim_qk**-0.5
        self.q = nn.Linear(dim, num_heads * self.dim_qk, bias=False)
        # keys and values interleaved per head: [k_0 | v_0 | k_1 | v_1 | ...]
        self.kv = nn.Linear(dim, num_heads * (self.dim_qk + self.dim_v), bias=False)
        self.height_rel = nn.Parameter(torch.empty(2 * self.window_size - 1, self.dim_qk))
        self.width_rel = nn.Parameter(torch.empty(2 * self.window_size - 1, self.dim_qk))
        self.proj = nn.Linear(num_heads * self.dim_v, dim)
        # rel_index[qy, ky] = ky - qy + w - 1: the table row for query row qy and key row ky
        # (the same holds for columns). For query (qy, qx), entries [:w] of rel_gather pick the
        # height rows of [height_rel; width_rel] for every key row, entries [w:] the width rows
        # for every key column.
        w = self.window_size
        rel_index = (torch.arange(w)[None, :] - torch.arange(block_size)[:, None] + w - 1)
        rel_gather = torch.cat([rel_index[:, None, :].expand(-1, block_size, -1),
                                rel_index[None, :, :].expand(block_size, -1, -1) + 2 * w - 1],
                               dim=-1)  # (b, b, 2w)
        self.register_buffer('rel_index', rel_index, persistent=False)
        self.register_buffer('rel_gather', rel_gather, persistent=False)
        self.init_weights()

    def init_weights(self):
        nn.init.normal_(self.height_rel, std=self.dim_qk**-0.5)
        nn.init.normal_(self.width_rel, std=self.dim_qk**-0.5)

    def _blocks(self, x):
        """``(B, Hp, Wp, n*d)`` -> ``(B, nBlocks, n, b*b, d)``."""
        B, Hp, Wp, _ = x.shape
        b, n = self.block_size, self.num_heads
        x = x.view(B, Hp // b, b, Wp // b, b, n, -1)
        return x.permute(0, 1, 3, 5, 2, 4, 6).reshape(B, (Hp // b) * (Wp // b), n, b * b, -1)

    def resolve_impl(self, device):
        """The implementation a call on ``device`` runs: ``'triton'``, ``'sdpa'`` or
        ``'reference'`` (always inside :func:`use_reference_attention`)."""
        if reference_enabled():
            return 'reference'
        return resolve_triton_impl('halo', self.impl, IMPLS, device, portable='sdpa')

    def _windows(self, kv, reference):
        """``(B, Hp, Wp, n*(dk+dv))`` -> keys ``(B, nBlocks, n, w*w, dk)`` and values."""
        b, w, n = self.block_size, self.window_size, self.num_heads
        before, after = self.pad_before, self.pad_after
        kv = nn.functional.pad(kv, (0, 0, before, after, before, after))
        # one copy into (B, nBlocks, n, w*w, dk+dv): keys/values end with unit stride, as the
        # fused attention kernels require
        windows = overlapping_windows_reference if reference else overlapping_windows
        kv = windows(kv, w, b, n)
        return kv.split([self.dim_qk, self.dim_v], dim=-1)

    def relative_terms(self, q, Hp, Wp):
        """Query-related position logits with the border keys masked, per axis.

        ``q (B, nBlocks, n, b*b, d)`` -> ``(B, nBlocks, n, b*b, 2w)``: entry ``ky`` is the
        height term of key row ``ky``, entry ``w + kx`` the width term of key column ``kx``; the
        logit of key ``(ky, kx)`` is their sum. One matmul scores every query against all
        ``2 * (2w - 1)`` table rows, a gather keeps the ``2w`` each query uses, and the border
        mask is added to those.
        """
        b, w = self.block_size, self.window_size
        B, nH, nW = q.shape[0], Hp // b, Wp // b
        q = q.view(B, nH, nW, self.num_heads, b, b, -1)  # (..., qy, qx, d)
        table = torch.cat([self.height_rel, self.width_rel]).to(q.dtype)
        scores = q @ table.t()  # (..., qy, qx, 2 * (2w - 1))
        terms = scores.gather(-1, self.rel_gather.expand(*scores.shape[:-1], 2 * w))
        border = halo_border_logits(Hp, Wp, b, self.pad_before, self.pad_after, q.device,
                                    terms.dtype)
        terms = terms + border.view(nH, nW, 1, 1, 1, 2 * w)
        return terms.view(B, nH * nW, self.num_heads, b * b, 2 * w)

    def relative_logits(self, q, Hp, Wp):
        """The full additive bias ``(B, nBlocks, n, b*b, w*w)`` of :meth:`relative_terms`,
        written by one broadcast add."""
        w = self.window_size
        terms = self.relative_terms(q, Hp, Wp)
        logits = terms[..., :w, None] + terms[..., None, w:]  # (..., ky, kx)
        return logits.flatten(-2)

    def relative_logits_reference(self, q, Hp, Wp):
        """:meth:`relative_logits` written out: per-row table lookups, the full sum, a mask."""
        b, w = self.block_size, self.window_size
        q = q.unflatten(-2, (b, b))  # (..., qy, qx, d)
        rel_h = torch.einsum('...yxd,ykd->...yxk', q, self.height_rel[self.rel_index])
        rel_w = torch.einsum('...yxd,xkd->...yxk', q, self.width_rel[self.rel_index])
        logits = (rel_h[..., :, None] + rel_w[..., None, :]).flatten(-2)  # (..., qy, qx, w*w)
        logits = logits.flatten(-3, -2)  # (B, nBlocks, n, b*b, w*w)
        outside = halo_key_padding_mask(Hp, Wp, b, self.pad_before, self.pad_after, q.device)
        return logits.masked_fill(outside[:, None, None, :], masked_fill_value(logits.dtype))

    def forward(self, x):
        B, H, W, _ = x.shape
        b = self.block_size
        x, _ = pad_to_multiple(x, b)
        Hp, Wp = x.shape[1:3]
        impl = self.resolve_impl(x.device)
        q_map, kv_map = self.q(x), self.kv(x)
        q = self._blocks(q_map)
        if impl == 'triton':
            from ...ops.triton.halo_attention import halo_attention
            out = halo_attention(q_map, kv_map, self.relative_terms(q, Hp, Wp), self.num_heads,
                                 b, self.pad_before, self.window_size, self.scale)
            return self.proj(out[:, :H, :W])
        k, v = self._windows(kv_map, reference=impl == 'reference')
        if impl == 'reference':
            out = reference_attention(q, k, v, self.relative_logits_reference(q, Hp, Wp),
                                      self.scale)
        elif torch.is_grad_enabled():  # training: no (..., b*b, w*w) bias gradient
            out = axis_bias_attention(q, k, v, self.relative_terms(q, Hp, Wp), self.scale)
        else:
            out = attention(q, k, v, self.relative_logits(q, Hp, Wp), self.scale)
        # out: (B, nBlocks, n, b*b, dv)
        out = out.view(B, Hp // b, Wp // b, self.num_heads, b, b, self.dim_v)
        out = out.permute(0, 1, 4, 2, 5, 3, 6).reshape(B, Hp, Wp, -1)
        return self.proj(out[:, :H, :W])
