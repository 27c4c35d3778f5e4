"""Fused Halo attention (HaloNet) as Triton kernels, forward and backward.

One program handles one query block and one head: its ``b*b`` queries (padded to ``BLOCK_Q``
rows) attend to the ``w x w`` window starting at map position ``(I*b - pad_before,
J*b - pad_before)``. Keys and values are read straight from the feature map
``kv (B, Hp, Wp, n*(dk+dv))`` (per head ``[k | v]``, as the mixer's ``kv`` Linear writes them);
keys outside ``[0, Hp) x [0, Wp)`` load as zeros, as in the zero-bordered reference, and the
border terms of ``terms`` mask them. The window is walked in key tiles of ``ROWS`` window rows
by ``COLS`` (``w`` rounded up to a power of two) columns, so a score tile reshapes to
``(BLOCK_Q, ROWS, COLS)``: the row and column terms (``terms (B, nBlocks, n, b*b, 2w)``, see
``HaloAttention.relative_terms``) are added by broadcasting in registers, and the backward pass
reduces the score gradient to them by two sums. Softmax is online (one pass over the tiles);
the output goes straight into ``(B, Hp, Wp, n*dv)`` and the log-sum-exp is kept for backward.

The backward program recomputes the probabilities of its window tile by tile, accumulates
``dq`` and the column-term gradient in registers and writes each row-term gradient once; ``dk``
and ``dv`` of a key are shared by up to four overlapping windows, so they are added with
atomics into a float32 (float64 for float64 inputs) map ``(B, Hp, Wp, n*(dk+dv))``.
Matmuls take the input dtype (IEEE float32 for float32 inputs) and accumulate in float32.
"""
import torch
import triton
import triton.language as tl

from . import interpreting

# Launch options per (kernel, 16-bit inputs): warps, pipeline stages and keys per tile
# (ROWS * COLS), chosen so that no kernel spills registers on sm_80/sm_90 at dk = dv = 32.
# The interpreter runs numpy per tile, so it takes fewer, larger ones.
CONFIGS = {
    ('fwd', True): dict(num_warps=4, num_stages=2, key_tile=32),
    ('bwd', True): dict(num_warps=8, num_stages=2, key_tile=32),
    ('fwd', False): dict(num_warps=8, num_stages=1, key_tile=32),
    ('bwd', False): dict(num_warps=16, num_stages=2, key_tile=32),  # IEEE float32 dots
}
INTERPRETER_KEY_TILE = 128


@triton.jit
def _block_queries(Hp, Wp, n_blocks_w, HEADS: tl.constexpr, BLOCK: tl.constexpr,
                   BLOCK_Q: tl.constexpr):
    """This program's batch, head and block origin ``(by, bx)``; the flat pixel of each query
    row, which rows are queries, and each row's index into ``(B, nBlocks, n, b*b)``."""
    block = tl.program_id(0)
    batch = tl.program_id(1) // HEADS
    head = tl.program_id(1) % HEADS
    by = (block // n_blocks_w) * BLOCK
    bx = (block % n_blocks_w) * BLOCK
    qi = tl.arange(0, BLOCK_Q)
    pixel = (batch * Hp + by + qi // BLOCK).to(tl.int64) * Wp + bx + qi % BLOCK
    row = ((batch * tl.num_programs(0) + block) * HEADS + head).to(tl.int64) * (BLOCK * BLOCK)
    return batch, head, by, bx, pixel, qi < BLOCK * BLOCK, row + qi


@triton.jit
def _key_tile(kv_ptr, terms, q_valid, base_kv, y0, x0, t, Hp, Wp, HEADS: tl.constexpr,
              DK: tl.constexpr, DV: tl.constexpr, W_SIZE: tl.constexpr, BLOCK_DK: tl.constexpr,
              BLOCK_DV: tl.constexpr, ROWS: tl.constexpr, COLS: tl.constexpr):
    """Tile ``t`` of the window whose top-left key is at map ``(y0, x0)``: keys
    ``(ROWS*COLS, BLOCK_DK)`` and values (zero outside the map), the row terms
    ``(BLOCK_Q, ROWS)`` and their mask, the keys' offsets in ``kv`` (base ``base_kv``), which
    slots are in the window and which of those lie inside the map."""
    slot = tl.arange(0, ROWS * COLS)
    ky = t * ROWS + slot // COLS
    kx = slot % COLS
    in_window = (ky < W_SIZE) & (kx < W_SIZE)
    y = y0 + ky
    x = x0 + kx
    inside = in_window & (y >= 0) & (y < Hp) & (x >= 0) & (x < Wp)
    offset = base_kv + (y * Wp + x).to(tl.int64) * (HEADS * (DK + DV))
    dk = tl.arange(0, BLOCK_DK)
    dv = tl.arange(0, BLOCK_DV)
    k = tl.load(kv_ptr + offset[:, None] + dk[None, :], mask=inside[:, None] & (dk[None, :] < DK),
                other=0.0)
    v = tl.load(kv_ptr + offset[:, None] + DK + dv[None, :],
                mask=inside[:, None] & (dv[None, :] < DV), other=0.0)
    r = t * ROWS + tl.arange(0, ROWS)
    row_mask = q_valid[:, None] & (r[None, :] < W_SIZE)
    trow = tl.load(terms + r[None, :], mask=row_mask, other=0.0)
    return k, v, trow, row_mask, offset, in_window, inside


@triton.jit
def _scores(q, k, trow, tcol, in_window, scale, BLOCK_Q: tl.constexpr, ROWS: tl.constexpr,
            COLS: tl.constexpr):
    """``scale * q @ k^T`` plus row and column terms, slots outside the window at -inf:
    ``(BLOCK_Q, ROWS * COLS)`` in the accumulation dtype of ``trow``."""
    s = tl.dot(q, tl.trans(k), out_dtype=trow.dtype, input_precision='ieee') * scale
    s = tl.reshape(s, (BLOCK_Q, ROWS, COLS)) + trow[:, :, None] + tcol[:, None, :]
    s = tl.reshape(s, (BLOCK_Q, ROWS * COLS))
    return tl.where(in_window[None, :], s, float('-inf'))


@triton.jit
def halo_fwd_kernel(q_ptr, kv_ptr, terms_ptr, out_ptr, lse_ptr, scale, Hp, Wp, n_blocks_w,
                    HEADS: tl.constexpr, DK: tl.constexpr, DV: tl.constexpr, BLOCK: tl.constexpr,
                    PAD: tl.constexpr, W_SIZE: tl.constexpr, BLOCK_Q: tl.constexpr,
                    BLOCK_DK: tl.constexpr, BLOCK_DV: tl.constexpr, ROWS: tl.constexpr,
                    COLS: tl.constexpr):
    """Grid ``(nBlocks, B * n)``; see the module docstring."""
    batch, head, by, bx, pixel, q_valid, row = _block_queries(Hp, Wp, n_blocks_w, HEADS, BLOCK,
                                                              BLOCK_Q)
    acc_dtype = lse_ptr.dtype.element_ty
    dk = tl.arange(0, BLOCK_DK)
    dv = tl.arange(0, BLOCK_DV)
    q = tl.load(q_ptr + pixel[:, None] * (HEADS * DK) + head * DK + dk[None, :],
                mask=q_valid[:, None] & (dk[None, :] < DK), other=0.0)
    terms = terms_ptr + row[:, None] * (2 * W_SIZE)  # (b*b, 2w) of this batch, block, head
    col = tl.arange(0, COLS)
    tcol = tl.load(terms + W_SIZE + col[None, :], mask=q_valid[:, None] & (col[None, :] < W_SIZE),
                   other=0.0).to(acc_dtype)

    base_kv = batch.to(tl.int64) * Hp * Wp * (HEADS * (DK + DV)) + head * (DK + DV)
    m_i = tl.full((BLOCK_Q, ), float('-inf'), acc_dtype)
    l_i = tl.zeros((BLOCK_Q, ), acc_dtype)
    acc = tl.zeros((BLOCK_Q, BLOCK_DV), acc_dtype)
    for t in tl.range(0, tl.cdiv(W_SIZE, ROWS)):
        k, v, trow, _, _, in_window, _ = _key_tile(kv_ptr, terms, q_valid, base_kv, by - PAD,
                                                   bx - PAD, t, Hp, Wp, HEADS, DK, DV, W_SIZE,
                                                   BLOCK_DK, BLOCK_DV, ROWS, COLS)
        trow = trow.to(acc_dtype)
        s = _scores(q, k, trow, tcol, in_window, scale, BLOCK_Q, ROWS, COLS)
        m_new = tl.maximum(m_i, tl.max(s, 1))
        alpha = tl.exp(m_i - m_new)
        p = tl.exp(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, out_dtype=acc_dtype,
                                            input_precision='ieee')
        m_i = m_new

    out = acc / l_i[:, None]
    tl.store(out_ptr + pixel[:, None] * (HEADS * DV) + head * DV + dv[None, :],
             out.to(out_ptr.dtype.element_ty), mask=q_valid[:, None] & (dv[None, :] < DV))
    tl.store(lse_ptr + row, m_i + tl.log(l_i), mask=q_valid)


@triton.jit
def halo_bwd_kernel(grad_ptr, q_ptr, kv_ptr, terms_ptr, out_ptr, lse_ptr, dq_ptr, dkv_ptr,
                    dterms_ptr, scale, Hp, Wp, n_blocks_w, HEADS: tl.constexpr, DK: tl.constexpr,
                    DV: tl.constexpr, BLOCK: tl.constexpr, PAD: tl.constexpr,
                    W_SIZE: tl.constexpr, BLOCK_Q: tl.constexpr, BLOCK_DK: tl.constexpr,
                    BLOCK_DV: tl.constexpr, ROWS: tl.constexpr, COLS: tl.constexpr):
    """Grid ``(nBlocks, B * n)``: dq and dterms of the block's queries, dk/dv added to the map
    ``dkv_ptr`` with atomics."""
    batch, head, by, bx, pixel, q_valid, row = _block_queries(Hp, Wp, n_blocks_w, HEADS, BLOCK,
                                                              BLOCK_Q)
    acc_dtype = lse_ptr.dtype.element_ty
    dk = tl.arange(0, BLOCK_DK)
    dv = tl.arange(0, BLOCK_DV)
    q_mask = q_valid[:, None] & (dk[None, :] < DK)
    o_mask = q_valid[:, None] & (dv[None, :] < DV)
    q = tl.load(q_ptr + pixel[:, None] * (HEADS * DK) + head * DK + dk[None, :], mask=q_mask,
                other=0.0)
    o_offset = pixel[:, None] * (HEADS * DV) + head * DV + dv[None, :]
    do = tl.load(grad_ptr + o_offset, mask=o_mask, other=0.0)
    o = tl.load(out_ptr + o_offset, mask=o_mask, other=0.0)
    delta = tl.sum(do.to(acc_dtype) * o.to(acc_dtype), 1)
    lse = tl.load(lse_ptr + row, mask=q_valid, other=0.0)
    terms = terms_ptr + row[:, None] * (2 * W_SIZE)
    dterms = dterms_ptr + row[:, None] * (2 * W_SIZE)
    col = tl.arange(0, COLS)
    col_mask = q_valid[:, None] & (col[None, :] < W_SIZE)
    tcol = tl.load(terms + W_SIZE + col[None, :], mask=col_mask, other=0.0).to(acc_dtype)

    base_kv = batch.to(tl.int64) * Hp * Wp * (HEADS * (DK + DV)) + head * (DK + DV)
    dq = tl.zeros((BLOCK_Q, BLOCK_DK), acc_dtype)
    dtcol = tl.zeros((BLOCK_Q, COLS), acc_dtype)
    for t in tl.range(0, tl.cdiv(W_SIZE, ROWS)):
        k, v, trow, row_mask, offset, in_window, inside = _key_tile(
            kv_ptr, terms, q_valid, base_kv, by - PAD, bx - PAD, t, Hp, Wp, HEADS, DK, DV,
            W_SIZE, BLOCK_DK, BLOCK_DV, ROWS, COLS)
        trow = trow.to(acc_dtype)
        s = _scores(q, k, trow, tcol, in_window, scale, BLOCK_Q, ROWS, COLS)
        p = tl.exp(s - lse[:, None])
        dp = tl.dot(do, tl.trans(v), out_dtype=acc_dtype, input_precision='ieee')
        ds = p * (dp - delta[:, None])
        dv_tile = tl.dot(tl.trans(p.to(do.dtype)), do, out_dtype=acc_dtype,
                         input_precision='ieee')
        dk_tile = tl.dot(tl.trans(ds.to(q.dtype)), q, out_dtype=acc_dtype,
                         input_precision='ieee') * scale
        dq += tl.dot(ds.to(k.dtype), k, out_dtype=acc_dtype, input_precision='ieee') * scale
        ds = tl.reshape(ds, (BLOCK_Q, ROWS, COLS))
        tl.store(dterms + t * ROWS + tl.arange(0, ROWS)[None, :],
                 tl.sum(ds, 2).to(dterms_ptr.dtype.element_ty), mask=row_mask)
        dtcol += tl.sum(ds, 1)
        tl.atomic_add(dkv_ptr + offset[:, None] + dk[None, :], dk_tile,
                      mask=inside[:, None] & (dk[None, :] < DK), sem='relaxed')
        tl.atomic_add(dkv_ptr + offset[:, None] + DK + dv[None, :], dv_tile,
                      mask=inside[:, None] & (dv[None, :] < DV), sem='relaxed')

    tl.store(dq_ptr + pixel[:, None] * (HEADS * DK) + head * DK + dk[None, :],
             dq.to(dq_ptr.dtype.element_ty), mask=q_mask)
    tl.store(dterms + W_SIZE + col[None, :], dtcol.to(dterms_ptr.dtype.element_ty),
             mask=col_mask)


KERNELS = dict(fwd=halo_fwd_kernel, bwd=halo_bwd_kernel)


def _accumulation_dtype(dtype):
    return torch.float64 if dtype == torch.float64 else torch.float32


def _config(kind, dtype):
    """Launch options and keys per tile of the ``'fwd'`` or ``'bwd'`` kernel."""
    config = dict(CONFIGS[kind, dtype in (torch.bfloat16, torch.float16)])
    if interpreting():
        config['key_tile'] = INTERPRETER_KEY_TILE
    return config


def _constexprs(num_heads, dk, dv, block, pad_before, window, key_tile):
    """The constexpr parameters of both kernels."""
    cols = triton.next_power_of_2(window)
    return dict(HEADS=num_heads, DK=dk, DV=dv, BLOCK=block, PAD=pad_before, W_SIZE=window,
                BLOCK_Q=max(16, triton.next_power_of_2(block * block)),
                BLOCK_DK=max(16, triton.next_power_of_2(dk)),
                BLOCK_DV=max(16, triton.next_power_of_2(dv)),
                ROWS=max(1, key_tile // cols), COLS=cols)


def _launch(kind, q, kv, num_heads, block, pad_before, window, *args):
    """Run the ``'fwd'`` or ``'bwd'`` kernel on the grid ``(nBlocks, B * n)``."""
    B, Hp, Wp, _ = q.shape
    dk = q.shape[-1] // num_heads
    config = _config(kind, q.dtype)
    meta = _constexprs(num_heads, dk, kv.shape[-1] // num_heads - dk, block, pad_before, window,
                       config.pop('key_tile'))
    grid = ((Hp // block) * (Wp // block), B * num_heads)
    KERNELS[kind][grid](*args, Hp, Wp, Wp // block, **config, **meta)


def _check(q, kv, terms, num_heads, block, window):
    B, Hp, Wp, cq = q.shape
    if Hp % block or Wp % block:
        raise ValueError(f'halo_attention: map {Hp}x{Wp} is not a multiple of block {block}; '
                         'pad it first (pad_to_multiple)')
    if cq % num_heads or kv.shape[-1] % num_heads or kv.shape[:3] != q.shape[:3]:
        raise ValueError(f'halo_attention: q {tuple(q.shape)} and kv {tuple(kv.shape)} must be '
                         f'(B, Hp, Wp, {num_heads}*dk) and (B, Hp, Wp, {num_heads}*(dk+dv))')
    expected = (B, (Hp // block) * (Wp // block), num_heads, block * block, 2 * window)
    if tuple(terms.shape) != expected or kv.dtype != q.dtype:
        raise ValueError(f'halo_attention: terms must be {expected} and kv of dtype {q.dtype}, '
                         f'got {tuple(terms.shape)} and {kv.dtype}')


@torch.library.custom_op('stm_mm::halo_attention_fwd', mutates_args=())
def halo_attention_fwd(q: torch.Tensor, kv: torch.Tensor, terms: torch.Tensor, num_heads: int,
                       block: int, pad_before: int, window: int,
                       scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Output ``(B, Hp, Wp, n*dv)`` and log-sum-exp ``(B, nBlocks, n, b*b)``."""
    q, kv, terms = q.contiguous(), kv.contiguous(), terms.contiguous()
    dv = kv.shape[-1] // num_heads - q.shape[-1] // num_heads
    out = q.new_empty(*q.shape[:3], num_heads * dv)
    lse = q.new_empty(terms.shape[:-1], dtype=_accumulation_dtype(q.dtype))
    _launch('fwd', q, kv, num_heads, block, pad_before, window, q, kv, terms, out, lse,
            scale)
    return out, lse


@halo_attention_fwd.register_fake
def _(q, kv, terms, num_heads, block, pad_before, window, scale):
    dv = kv.shape[-1] // num_heads - q.shape[-1] // num_heads
    out = q.new_empty(*q.shape[:3], num_heads * dv)
    return out, q.new_empty(terms.shape[:-1], dtype=_accumulation_dtype(q.dtype))


@torch.library.custom_op('stm_mm::halo_attention_bwd', mutates_args=())
def halo_attention_bwd(grad: torch.Tensor, q: torch.Tensor, kv: torch.Tensor,
                       terms: torch.Tensor, out: torch.Tensor, lse: torch.Tensor, num_heads: int,
                       block: int, pad_before: int, window: int,
                       scale: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients of q ``(B, Hp, Wp, n*dk)``, kv ``(B, Hp, Wp, n*(dk+dv))`` and terms."""
    q, kv, terms, grad = q.contiguous(), kv.contiguous(), terms.contiguous(), grad.contiguous()
    dq = torch.empty_like(q)
    dkv = torch.zeros(kv.shape, dtype=lse.dtype, device=kv.device)
    dterms = torch.empty_like(terms)
    _launch('bwd', q, kv, num_heads, block, pad_before, window, grad, q, kv, terms, out,
            lse, dq, dkv, dterms, scale)
    return dq, dkv.to(kv.dtype), dterms


@halo_attention_bwd.register_fake
def _(grad, q, kv, terms, out, lse, num_heads, block, pad_before, window, scale):
    return torch.empty_like(q), torch.empty_like(kv), torch.empty_like(terms)


def _setup_context(ctx, inputs, output):
    q, kv, terms, *ctx.geometry = inputs
    ctx.save_for_backward(q, kv, terms, *output)
    ctx.mark_non_differentiable(output[1])


def _backward(ctx, grad_out, grad_lse):
    dq, dkv, dterms = halo_attention_bwd(grad_out, *ctx.saved_tensors, *ctx.geometry)
    return dq, dkv, dterms, None, None, None, None, None


halo_attention_fwd.register_autograd(_backward, setup_context=_setup_context)


def halo_attention(q, kv, terms, num_heads, block, pad_before, window, scale):
    """Fused Halo attention on block-padded maps.

    Args:
        q: queries ``(B, Hp, Wp, n*dk)``; ``Hp``, ``Wp`` multiples of ``block``.
        kv: keys and values ``(B, Hp, Wp, n*(dk+dv))``, per head ``[k | v]``.
        terms: row and column logits ``(B, nBlocks, n, b*b, 2w)`` (border mask included).
        pad_before: rows/columns of the window before its block; window: its side ``w``.
    Returns:
        ``(B, Hp, Wp, n*dv)``.
    """
    _check(q, kv, terms, num_heads, block, window)
    return halo_attention_fwd(q, kv, terms, num_heads, block, pad_before, window, scale)[0]


def compile_specs():
    """The launch configurations of the GPU path at U-HaloNet-tiny's shapes (3 heads of
    dk = dv = 32, b = 7; halo 3 and the Switch blocks' halo 0), bf16 and fp32, for a
    cubin/ptxas check."""
    specs = []
    for dtype, ty in ((torch.bfloat16, 'bf16'), (torch.float32, 'fp32')):
        pointers = dict(grad_ptr=ty, q_ptr=ty, kv_ptr=ty, terms_ptr=ty, out_ptr=ty,
                        lse_ptr='fp32', dq_ptr=ty, dkv_ptr='fp32', dterms_ptr=ty)
        for halo in (3, 0):
            for kind, kernel in KERNELS.items():
                config = dict(CONFIGS[kind, dtype == torch.bfloat16])
                args = {k: '*' + v for k, v in pointers.items()}
                args.update(scale='fp32', Hp='i32', Wp='i32', n_blocks_w='i32')
                args.update(_constexprs(3, 32, 32, 7, halo, 7 + 2 * halo, config.pop('key_tile')))
                specs.append(dict(name=f'halo_{kind}_{ty}_w{7 + 2 * halo}', kernel=kernel,
                                  args={k: args[k] for k in kernel.arg_names}, **config))
    return specs
