"""Swin shifted-window attention fused into Triton kernels (forward and backward).

The kernels read q, k and v straight from the ``qkv`` Linear's output on the padded map
``(B, Hp, Wp, 3C)`` at the rolled coordinates of each window and write the attention output
``(B, Hp, Wp, C)`` at the un-rolled positions, so neither ``torch.roll``, the window partition,
the ``(heads, M*M, M*M)`` position bias nor the ``(nW, M*M, M*M)`` shift mask is materialised:
the bias is gathered from the ``((2M-1)^2, heads)`` table and the -100 mask computed from index
arithmetic inside the kernel.

One program attends one (image, window, head): the ``M*M`` tokens (49, padded to 64) fit one
tile, so the softmax is exact in registers (no online rescaling). The backward pass recomputes
the scores in two kernels (FlashAttention-2 style, so that neither spills registers on sm_80 and
sm_90): one writes dq, the other dk and dv; each token lies in exactly one window, so both write
without atomics. The table gradient sums dS over images and windows per relative offset: each dq
program loops over several windows and adds their dS to its own ``(T, T)`` partial in global
memory (load-add-store, deterministic, no atomics; a register sum across the loop spills), and
the partials are reduced and scattered to the table by PyTorch (a few MB, once per call).
"""
from typing import Tuple

import torch
import triton
import triton.language as tl

from ...models.utils.windows import cache_per_size, relative_position_index

NUM_WARPS = 8  # 4 spills registers in the fp32 kernels (ptxas -v, sm_80/sm_90)
NUM_STAGES = 1  # 2 pipelines the backward's window loop at the cost of spills
BACKWARD_PROGRAMS_PER_SM = 4  # dq programs per SM, all heads together


@triton.jit
def _window_tokens(window_id, Hp, Wp, shift, WINDOW: tl.constexpr, BLOCK_T: tl.constexpr):
    """Tokens of window ``window_id`` (image-major, windows row-major) on the rolled map.

    Returns the flat token index into ``(B * Hp * Wp)`` (int64), whether the tile row is a real
    token (the tile pads ``M*M`` to ``BLOCK_T``) and the token's shift-mask region (0..8;
    constant within a window when ``shift`` is 0).
    """
    t = tl.arange(0, BLOCK_T)
    ty, tx = t // WINDOW, t % WINDOW
    windows_x = Wp // WINDOW
    windows = (Hp // WINDOW) * windows_x
    image, window = window_id // windows, window_id % windows
    ry = (window // windows_x) * WINDOW + ty  # position on the map rolled by -shift
    rx = (window % windows_x) * WINDOW + tx
    y, x = (ry + shift) % Hp, (rx + shift) % Wp
    token = (image.to(tl.int64) * Hp + y) * Wp + x
    region = ((ry >= Hp - WINDOW).to(tl.int32) + (ry >= Hp - shift).to(tl.int32)) * 3 + \
        (rx >= Wp - WINDOW).to(tl.int32) + (rx >= Wp - shift).to(tl.int32)
    return token, t < WINDOW * WINDOW, region


@triton.jit
def _load_head(ptr, token, valid, channel0, HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr,
               ROW: tl.constexpr):
    """``(BLOCK_T, BLOCK_D)`` channels ``channel0 + [0, HEAD_DIM)`` of the tokens (rows of
    ``ROW`` elements), zeros outside."""
    e = tl.arange(0, BLOCK_D)
    mask = valid[:, None] & (e < HEAD_DIM)[None, :]
    return tl.load(ptr + token[:, None] * ROW + channel0 + e[None, :], mask=mask, other=0.0)


@triton.jit
def _store_head(ptr, value, token, valid, channel0, HEAD_DIM: tl.constexpr,
                BLOCK_D: tl.constexpr, ROW: tl.constexpr):
    e = tl.arange(0, BLOCK_D)
    mask = valid[:, None] & (e < HEAD_DIM)[None, :]
    tl.store(ptr + token[:, None] * ROW + channel0 + e[None, :],
             value.to(ptr.dtype.element_ty), mask=mask)


@triton.jit
def _dot(a, b, TF32: tl.constexpr):
    """``a @ b`` accumulated in fp32 (fp64 for fp64 operands); fp32 operands are rounded to
    TF32 only when ``TF32`` (PyTorch's ``allow_tf32`` for matmuls)."""
    if TF32:
        return tl.dot(a, b, input_precision='tf32')
    else:
        return tl.dot(a, b, input_precision='ieee')


@triton.jit
def _position_bias(table_ptr, head, HEADS: tl.constexpr, WINDOW: tl.constexpr,
                   BLOCK_T: tl.constexpr):
    """``(T, T)`` logits bias of one head: ``table[rel(i, j), head]``, -inf on padded keys."""
    t = tl.arange(0, BLOCK_T)
    ty, tx = t // WINDOW, t % WINDOW
    rel = (ty[:, None] - ty[None, :] + WINDOW - 1) * (2 * WINDOW - 1) + \
        (tx[:, None] - tx[None, :] + WINDOW - 1)
    valid = t < WINDOW * WINDOW
    bias = tl.load(table_ptr + rel * HEADS + head, mask=valid[:, None] & valid[None, :],
                   other=0.0)
    return tl.where(valid[None, :], bias, float('-inf'))


@triton.jit
def _probabilities(q, k, bias, region, scale, TF32: tl.constexpr):
    """``softmax(q k^T * scale + bias + mask)`` of one window and head, ``(T, T)``, in the
    dtype of ``q k^T`` (fp32, or fp64 for fp64 inputs); the mask is -100 between regions."""
    s = _dot(q, tl.trans(k), TF32) * scale + bias
    s = tl.where(region[:, None] != region[None, :], s - 100.0, s)
    p = tl.exp(s - tl.max(s, axis=1)[:, None])
    return p / tl.sum(p, axis=1)[:, None]


@triton.jit
def _window_attention_fwd(qkv_ptr, table_ptr, out_ptr, Hp, Wp, shift, scale,
                          HEADS: tl.constexpr, HEAD_DIM: tl.constexpr, WINDOW: tl.constexpr,
                          BLOCK_T: tl.constexpr, BLOCK_D: tl.constexpr, TF32: tl.constexpr):
    """Grid ``(B * nW, heads)``: one window and head per program."""
    head = tl.program_id(1)
    token, valid, region = _window_tokens(tl.program_id(0), Hp, Wp, shift, WINDOW, BLOCK_T)
    C: tl.constexpr = HEADS * HEAD_DIM
    q = _load_head(qkv_ptr, token, valid, head * HEAD_DIM, HEAD_DIM, BLOCK_D, 3 * C)
    k = _load_head(qkv_ptr, token, valid, C + head * HEAD_DIM, HEAD_DIM, BLOCK_D, 3 * C)
    v = _load_head(qkv_ptr, token, valid, 2 * C + head * HEAD_DIM, HEAD_DIM, BLOCK_D, 3 * C)
    bias = _position_bias(table_ptr, head, HEADS, WINDOW, BLOCK_T)
    p = _probabilities(q, k, bias, region, scale, TF32)
    out = _dot(p.to(v.dtype), v, TF32)
    _store_head(out_ptr, out, token, valid, head * HEAD_DIM, HEAD_DIM, BLOCK_D, C)


@triton.jit
def _logits_grad(p, do, v, TF32: tl.constexpr):
    """dS ``(T, T)``: the gradient of the logits (and of the bias) of one window and head, from
    its probabilities ``p (T, T)``, output gradient ``do (T, D)`` and values ``v (T, D)``."""
    dp = _dot(do, tl.trans(v), TF32)
    return p * (dp - tl.sum(p * dp, axis=1)[:, None])


@triton.jit
def _window_attention_bwd_dq(qkv_ptr, table_ptr, grad_out_ptr, grad_qkv_ptr, partial_ptr,
                             num_windows, Hp, Wp, shift, scale, HEADS: tl.constexpr,
                             HEAD_DIM: tl.constexpr, WINDOW: tl.constexpr,
                             BLOCK_T: tl.constexpr, BLOCK_D: tl.constexpr, TF32: tl.constexpr):
    """Grid ``(P, heads)``: program ``i`` handles windows ``i, i + P, ...`` of one head, writes
    their dq and adds their dS to ``partial[i, head]`` ``(T, T)`` (zeros at launch)."""
    head = tl.program_id(1)
    C: tl.constexpr = HEADS * HEAD_DIM
    bias = _position_bias(table_ptr, head, HEADS, WINDOW, BLOCK_T)  # the same for every window
    t = tl.arange(0, BLOCK_T)
    partial = partial_ptr + (((tl.program_id(0) * HEADS + head) * BLOCK_T + t[:, None]) *
                             BLOCK_T + t[None, :])
    for window_id in range(tl.program_id(0), num_windows, tl.num_programs(0)):
        token, valid, region = _window_tokens(window_id, Hp, Wp, shift, WINDOW, BLOCK_T)
        q = _load_head(qkv_ptr, token, valid, head * HEAD_DIM, HEAD_DIM, BLOCK_D, 3 * C)
        k = _load_head(qkv_ptr, token, valid, C + head * HEAD_DIM, HEAD_DIM, BLOCK_D, 3 * C)
        p = _probabilities(q, k, bias, region, scale, TF32)
        do = _load_head(grad_out_ptr, token, valid, head * HEAD_DIM, HEAD_DIM, BLOCK_D, C)
        v = _load_head(qkv_ptr, token, valid, 2 * C + head * HEAD_DIM, HEAD_DIM, BLOCK_D, 3 * C)
        ds = _logits_grad(p, do, v, TF32)
        tl.store(partial, tl.load(partial) + ds.to(partial_ptr.dtype.element_ty))
        dq = _dot(ds.to(k.dtype), k, TF32) * scale
        _store_head(grad_qkv_ptr, dq, token, valid, head * HEAD_DIM, HEAD_DIM, BLOCK_D, 3 * C)


@triton.jit
def _window_attention_bwd_dkdv(qkv_ptr, table_ptr, grad_out_ptr, grad_qkv_ptr, Hp, Wp, shift,
                               scale, HEADS: tl.constexpr, HEAD_DIM: tl.constexpr,
                               WINDOW: tl.constexpr, BLOCK_T: tl.constexpr,
                               BLOCK_D: tl.constexpr, TF32: tl.constexpr):
    """Grid ``(B * nW, heads)``: dk and dv of one window and head per program."""
    head = tl.program_id(1)
    token, valid, region = _window_tokens(tl.program_id(0), Hp, Wp, shift, WINDOW, BLOCK_T)
    C: tl.constexpr = HEADS * HEAD_DIM
    q = _load_head(qkv_ptr, token, valid, head * HEAD_DIM, HEAD_DIM, BLOCK_D, 3 * C)
    k = _load_head(qkv_ptr, token, valid, C + head * HEAD_DIM, HEAD_DIM, BLOCK_D, 3 * C)
    bias = _position_bias(table_ptr, head, HEADS, WINDOW, BLOCK_T)
    p = _probabilities(q, k, bias, region, scale, TF32)
    # each gradient is stored as soon as it is computed (fewer live registers)
    do = _load_head(grad_out_ptr, token, valid, head * HEAD_DIM, HEAD_DIM, BLOCK_D, C)
    dv = _dot(tl.trans(p.to(do.dtype)), do, TF32)
    _store_head(grad_qkv_ptr, dv, token, valid, 2 * C + head * HEAD_DIM, HEAD_DIM, BLOCK_D,
                3 * C)
    v = _load_head(qkv_ptr, token, valid, 2 * C + head * HEAD_DIM, HEAD_DIM, BLOCK_D, 3 * C)
    ds = _logits_grad(p, do, v, TF32)
    dk = _dot(tl.trans(ds.to(q.dtype)), q, TF32) * scale
    _store_head(grad_qkv_ptr, dk, token, valid, C + head * HEAD_DIM, HEAD_DIM, BLOCK_D, 3 * C)


def _tiles(window, head_dim):
    """``(BLOCK_T, BLOCK_D)``: the window's tokens and the head's channels padded to powers of
    two, at least 16 (the smallest ``tl.dot`` side on the GPU)."""
    return (max(16, triton.next_power_of_2(window * window)),
            max(16, triton.next_power_of_2(head_dim)))


def _tf32():
    """Whether fp32 operands may be rounded to TF32: PyTorch's setting for CUDA matmuls (off by
    default; ``torch.set_float32_matmul_precision('high')`` turns it on)."""
    return torch.backends.cuda.matmul.allow_tf32


def _check(qkv, table, heads, window):
    B, Hp, Wp, C3 = qkv.shape
    if Hp % window or Wp % window:
        raise ValueError(f'window_attention: the map {Hp}x{Wp} must be padded to multiples of '
                         f'the window {window} (pad_to_multiple)')
    if C3 % (3 * heads):
        raise ValueError(f'window_attention: qkv has {C3} channels, not 3 * heads * head_dim '
                         f'for {heads} heads')
    if tuple(table.shape) != ((2 * window - 1)**2, heads):
        raise ValueError(f'window_attention: the table must be ((2M-1)^2, heads) = '
                         f'{((2 * window - 1)**2, heads)}, got {tuple(table.shape)}')


@torch.library.custom_op('stm_mm::swin_window_attention', mutates_args=())
def window_attention(qkv: torch.Tensor, table: torch.Tensor, heads: int, window: int, shift: int,
                     scale: float) -> torch.Tensor:
    """Shifted-window attention of Swin on a padded map, before the output projection.

    Args:
        qkv: ``(B, Hp, Wp, 3C)``, the qkv Linear's output (channels ``[q | k | v]``, each
            ``heads x head_dim``); ``Hp``, ``Wp`` multiples of ``window``.
        table: relative position bias ``((2M-1)^2, heads)``.
        shift: the windows' shift (0: regular windows); shifted windows get Swin's -100 between
            regions of the rolled map.
    Returns:
        ``(B, Hp, Wp, C)``: ``torch.roll(window_merge(attention(window_partition(roll(qkv,
        -shift)))), shift)``, the reference path's value before ``proj``.
    """
    _check(qkv, table, heads, window)
    qkv, table = qkv.contiguous(), table.contiguous()
    B, Hp, Wp, C3 = qkv.shape
    out = qkv.new_empty(B, Hp, Wp, C3 // 3)
    block_t, block_d = _tiles(window, C3 // 3 // heads)
    grid = (B * (Hp // window) * (Wp // window), heads)
    _window_attention_fwd[grid](qkv, table, out, Hp, Wp, shift, scale, heads, C3 // 3 // heads,
                                window, block_t, block_d, _tf32(), num_warps=NUM_WARPS,
                                num_stages=NUM_STAGES)
    return out


@window_attention.register_fake
def _(qkv, table, heads, window, shift, scale):
    return qkv.new_empty(*qkv.shape[:-1], qkv.shape[-1] // 3)


@cache_per_size
def _relative_index(window, device):
    return relative_position_index(window).flatten().to(device)


def _backward_programs(num_windows, heads, device):
    """dq programs per head: a few per SM on the GPU; two elsewhere (the interpreter),
    so that small tests still cover a program looping over several windows."""
    if device.type != 'cuda':
        return min(num_windows, 2)
    sms = torch.cuda.get_device_properties(device).multi_processor_count
    return max(1, min(num_windows, BACKWARD_PROGRAMS_PER_SM * sms // heads))


@torch.library.custom_op('stm_mm::swin_window_attention_backward', mutates_args=())
def window_attention_backward(grad_out: torch.Tensor, qkv: torch.Tensor, table: torch.Tensor,
                              heads: int, window: int, shift: int,
                              scale: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(grad_qkv (B, Hp, Wp, 3C), grad_table ((2M-1)^2, heads))`` of :func:`window_attention`
    from ``grad_out (B, Hp, Wp, C)``."""
    grad_out, qkv, table = grad_out.contiguous(), qkv.contiguous(), table.contiguous()
    B, Hp, Wp, C3 = qkv.shape
    grad_qkv = torch.empty_like(qkv)  # every token of every window is written
    block_t, block_d = _tiles(window, C3 // 3 // heads)
    num_windows = B * (Hp // window) * (Wp // window)
    programs = _backward_programs(num_windows, heads, qkv.device)
    accumulate = torch.float64 if qkv.dtype == torch.float64 else torch.float32
    partial = qkv.new_zeros(programs, heads, block_t, block_t, dtype=accumulate)
    _window_attention_bwd_dq[(programs, heads)](
        qkv, table, grad_out, grad_qkv, partial, num_windows, Hp, Wp, shift, scale, heads,
        C3 // 3 // heads, window, block_t, block_d, _tf32(), num_warps=NUM_WARPS,
        num_stages=NUM_STAGES)
    _window_attention_bwd_dkdv[(num_windows, heads)](
        qkv, table, grad_out, grad_qkv, Hp, Wp, shift, scale, heads, C3 // 3 // heads, window,
        block_t, block_d, _tf32(), num_warps=NUM_WARPS, num_stages=NUM_STAGES)
    T = window * window
    ds = partial.sum(0)[:, :T, :T].reshape(heads, T * T)  # dS summed over images and windows
    grad_table = torch.zeros(table.shape, dtype=accumulate, device=table.device)
    grad_table.index_add_(0, _relative_index(window, table.device), ds.t())
    return grad_qkv, grad_table.to(table.dtype)


@window_attention_backward.register_fake
def _(grad_out, qkv, table, heads, window, shift, scale):
    return torch.empty_like(qkv), torch.empty_like(table)


def _save_inputs(ctx, inputs, output):
    qkv, table, ctx.heads, ctx.window, ctx.shift, ctx.scale = inputs
    ctx.save_for_backward(qkv, table)


def _backward(ctx, grad_out):
    qkv, table = ctx.saved_tensors
    grad_qkv, grad_table = window_attention_backward(grad_out, qkv, table, ctx.heads, ctx.window,
                                                     ctx.shift, ctx.scale)
    return grad_qkv, grad_table, None, None, None, None


window_attention.register_autograd(_backward, setup_context=_save_inputs)


def compile_specs():
    """The launch configurations of the GPU path at U-Swin-tiny's shapes (window 7, head dim 32;
    3 heads), for a cubin / ``ptxas -v`` check: bf16, fp32 and fp32 with TF32 dots."""
    block_t, block_d = _tiles(7, 32)
    tiles = dict(HEADS=3, HEAD_DIM=32, WINDOW=7, BLOCK_T=block_t, BLOCK_D=block_d)
    geometry = dict(Hp='i32', Wp='i32', shift='i32', scale='fp32')
    specs = []
    for name, dtype, tf32 in (('bf16', '*bf16', False), ('fp32', '*fp32', False),
                              ('fp32_tf32', '*fp32', True)):
        specs.append(dict(
            name=f'swin_window_attention_fwd_{name}', kernel=_window_attention_fwd,
            args=dict(qkv_ptr=dtype, table_ptr='*fp32', out_ptr=dtype, **geometry, **tiles,
                      TF32=tf32), num_warps=NUM_WARPS, num_stages=NUM_STAGES))
        specs.append(dict(
            name=f'swin_window_attention_bwd_dq_{name}', kernel=_window_attention_bwd_dq,
            args=dict(qkv_ptr=dtype, table_ptr='*fp32', grad_out_ptr=dtype, grad_qkv_ptr=dtype,
                      partial_ptr='*fp32', num_windows='i32', **geometry, **tiles, TF32=tf32),
            num_warps=NUM_WARPS, num_stages=NUM_STAGES))
        specs.append(dict(
            name=f'swin_window_attention_bwd_dkdv_{name}', kernel=_window_attention_bwd_dkdv,
            args=dict(qkv_ptr=dtype, table_ptr='*fp32', grad_out_ptr=dtype, grad_qkv_ptr=dtype,
                      **geometry, **tiles, TF32=tf32),
            num_warps=NUM_WARPS, num_stages=NUM_STAGES))
    return specs
