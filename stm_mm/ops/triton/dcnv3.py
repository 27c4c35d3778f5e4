"""DCNv3 core as Triton kernels, with the modulation softmax computed in the kernel.

Both kernels run one program per (tile of ``BLOCK_Q`` output pixels, group): the group's ``Cg``
channels are the vector dimension, so each pixel's offsets, modulation logits, sampling position
and bilinear weights are loaded / computed once and shared by its channels, and the four
neighbours of a sample are read as contiguous ``Cg``-channel rows of the channels-last input.

- forward: the softmax over the ``P`` logits of each pixel (max and sum in float32, float64 for
  float64 inputs) and the weighted sum of the ``P`` bilinear samples stay in registers.
- backward: per point, the four sums ``sum_c grad_out * v_corner`` (registers) give the
  gradients of the weight and of the sampling position; the ``P`` weight gradients of a pixel
  are kept in a ``(BLOCK_Q, BLOCK_P)`` tile for the softmax backward; the input gradient goes
  through relaxed float32 atomic adds (one per neighbour and channel).

``softmax=False`` takes the modulation weights as given (DCNv3's ``mask``), which lets the same
kernels serve :func:`stm_mm.ops.dcnv3` and :func:`stm_mm.ops.dcnv3_softmax`. The launches are
``torch.library`` custom ops (``stm_mm::dcnv3_triton_forward`` / ``_backward``), so autograd,
``opcheck`` and ``torch.compile(fullgraph=True)`` see them as single ops.
"""
from typing import Tuple

import torch
import triton
import triton.language as tl

FWD_BLOCK_Q, BWD_BLOCK_Q = 32, 16  # output pixels per program (x Cg channels)
NUM_WARPS = 4


@triton.jit
def _softmax_stats(mask_rows, q_in, POINTS: tl.constexpr, BLOCK_P: tl.constexpr,
                   FP64: tl.constexpr):
    """Logits ``(BLOCK_Q, BLOCK_P)`` (-inf past P), their row max and 1 / row sum of exp."""
    p = tl.arange(0, BLOCK_P)
    p_in = p < POINTS
    logits = tl.load(mask_rows[:, None] + p[None, :], mask=q_in[:, None] & p_in[None, :],
                     other=0.0)
    logits = logits.to(tl.float64) if FP64 else logits.to(tl.float32)
    logits = tl.where(p_in[None, :], logits, float('-inf'))
    row_max = tl.max(logits, 1)
    inv_sum = 1.0 / tl.sum(tl.exp(logits - row_max[:, None]), 1)
    return logits, row_max, inv_sum


@triton.jit
def _point_weight(mask_rows, q_in, p, row_max, inv_sum, SOFTMAX: tl.constexpr,
                  FP64: tl.constexpr):
    """Modulation weight ``(BLOCK_Q,)`` of point ``p``: softmax of the logits, or as given."""
    w = tl.load(mask_rows + p, mask=q_in, other=0.0)
    w = w.to(tl.float64) if FP64 else w.to(tl.float32)
    if SOFTMAX:
        w = tl.exp(w - row_max) * inv_sum
    return w


@triton.jit
def _corners(offset_rows, q_in, ho, wo, p, i, j, offset_scale, height, width, channels,
             STRIDE_H: tl.constexpr, STRIDE_W: tl.constexpr, PAD_H: tl.constexpr,
             PAD_W: tl.constexpr, DILATION_H: tl.constexpr, DILATION_W: tl.constexpr,
             FP64: tl.constexpr):
    """Sampling position of point ``p = i * KH + j`` and its four neighbours ``(BLOCK_Q,)``:
    element offsets of neighbour 00 in the image, the bilinear fractions, and which
    neighbours lie inside the ``(H, W)`` map (none when the position is outside
    ``(-1, H) x (-1, W)``)."""
    off_x = tl.load(offset_rows + 2 * p, mask=q_in, other=0.0)
    off_y = tl.load(offset_rows + 2 * p + 1, mask=q_in, other=0.0)
    if FP64:
        off_x, off_y = off_x.to(tl.float64), off_y.to(tl.float64)
    else:
        off_x, off_y = off_x.to(tl.float32), off_y.to(tl.float32)
    x = (wo * STRIDE_W - PAD_W + i * DILATION_W) + off_x * offset_scale
    y = (ho * STRIDE_H - PAD_H + j * DILATION_H) + off_y * offset_scale
    inside = q_in & (x > -1) & (x < width) & (y > -1) & (y < height)
    x0f, y0f = tl.floor(x), tl.floor(y)
    lw, lh = x - x0f, y - y0f
    x0, y0 = x0f.to(tl.int32), y0f.to(tl.int32)
    left, right = inside & (x0 >= 0), inside & (x0 + 1 < width)
    top, bottom = inside & (y0 >= 0), inside & (y0 + 1 < height)
    at00 = (y0 * width + x0) * channels
    return at00, lw, lh, top & left, top & right, bottom & left, bottom & right


@triton.jit
def _neighbour(rows, at, mask, dtype):
    """The ``(BLOCK_Q, BLOCK_C)`` channel rows at element offsets ``at (BLOCK_Q,)`` from
    ``rows``, zero where ``mask`` is off, as ``dtype``."""
    return tl.load(rows + at[:, None], mask=mask, other=0.0).to(dtype)


@triton.jit
def _tile(pid_q, num_queries, height_out, width_out, BLOCK_Q: tl.constexpr,
          BLOCK_C: tl.constexpr, GROUP_CHANNELS: tl.constexpr):
    """This program's output pixels ``q (BLOCK_Q,)`` as ``(b, ho, wo)`` and channels ``c``."""
    q = pid_q * BLOCK_Q + tl.arange(0, BLOCK_Q)
    c = tl.arange(0, BLOCK_C)
    wo = q % width_out
    ho = (q // width_out) % height_out
    b = q // (width_out * height_out)
    return q, q < num_queries, b, ho, wo, c, c < GROUP_CHANNELS


@triton.jit
def dcnv3_fwd_kernel(input_ptr, offset_ptr, mask_ptr, out_ptr, num_queries, height, width,
                     height_out, width_out, channels, offset_row, mask_row, offset_scale,
                     GROUP_CHANNELS: tl.constexpr, KERNEL_H: tl.constexpr,
                     KERNEL_W: tl.constexpr, STRIDE_H: tl.constexpr, STRIDE_W: tl.constexpr,
                     PAD_H: tl.constexpr, PAD_W: tl.constexpr, DILATION_H: tl.constexpr,
                     DILATION_W: tl.constexpr, SOFTMAX: tl.constexpr, FP64: tl.constexpr,
                     BLOCK_Q: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_P: tl.constexpr):
    """``out[q, g * Cg + c] = sum_p w[q, g, p] * bilinear(input[b, :, :, g * Cg + c], pos)``."""
    pid_q, g = tl.program_id(0), tl.program_id(1)
    q, q_in, b, ho, wo, c, c_in = _tile(pid_q, num_queries, height_out, width_out, BLOCK_Q,
                                        BLOCK_C, GROUP_CHANNELS)
    POINTS: tl.constexpr = KERNEL_H * KERNEL_W
    q64 = q.to(tl.int64)
    offset_rows = offset_ptr + q64 * offset_row + g * (2 * POINTS)
    mask_rows = mask_ptr + q64 * mask_row + g * POINTS
    image = input_ptr + b.to(tl.int64) * height * width * channels + g * GROUP_CHANNELS
    row_max, inv_sum = 0.0, 0.0
    if SOFTMAX:
        _, row_max, inv_sum = _softmax_stats(mask_rows, q_in, POINTS, BLOCK_P, FP64)
    acc = tl.zeros([BLOCK_Q, BLOCK_C], dtype=tl.float64 if FP64 else tl.float32)
    for p in range(POINTS):
        i, j = p // KERNEL_H, p % KERNEL_H
        w = _point_weight(mask_rows, q_in, p, row_max, inv_sum, SOFTMAX, FP64)
        at, lw, lh, in00, in01, in10, in11 = _corners(
            offset_rows, q_in, ho, wo, p, i, j, offset_scale, height, width, channels,
            STRIDE_H, STRIDE_W, PAD_H, PAD_W, DILATION_H, DILATION_W, FP64)
        rows = image[:, None] + c[None, :]
        v00 = _neighbour(rows, at, in00[:, None] & c_in[None, :], acc.dtype)
        v01 = _neighbour(rows, at + channels, in01[:, None] & c_in[None, :], acc.dtype)
        v10 = _neighbour(rows, at + width * channels, in10[:, None] & c_in[None, :], acc.dtype)
        v11 = _neighbour(rows, at + (width + 1) * channels, in11[:, None] & c_in[None, :],
                         acc.dtype)
        w_top, w_bottom = w * (1 - lh), w * lh
        acc += ((w_top * (1 - lw))[:, None] * v00 + (w_top * lw)[:, None] * v01 +
                (w_bottom * (1 - lw))[:, None] * v10 + (w_bottom * lw)[:, None] * v11)
    out = out_ptr + q64[:, None] * channels + g * GROUP_CHANNELS + c[None, :]
    tl.store(out, acc, mask=q_in[:, None] & c_in[None, :])


@triton.jit
def dcnv3_bwd_kernel(grad_out_ptr, input_ptr, offset_ptr, mask_ptr, grad_input_ptr,
                     grad_offset_ptr, grad_mask_ptr, num_queries, height, width, height_out,
                     width_out, channels, offset_row, mask_row, offset_scale,
                     GROUP_CHANNELS: tl.constexpr, KERNEL_H: tl.constexpr,
                     KERNEL_W: tl.constexpr, STRIDE_H: tl.constexpr, STRIDE_W: tl.constexpr,
                     PAD_H: tl.constexpr, PAD_W: tl.constexpr, DILATION_H: tl.constexpr,
                     DILATION_W: tl.constexpr, SOFTMAX: tl.constexpr, FP64: tl.constexpr,
                     BLOCK_Q: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_P: tl.constexpr):
    """Gradients w.r.t. input (atomic adds into a float32 / float64 buffer), offset and the
    modulation logits (or weights when not ``SOFTMAX``), both ``(N, G * P [* 2])`` contiguous."""
    pid_q, g = tl.program_id(0), tl.program_id(1)
    q, q_in, b, ho, wo, c, c_in = _tile(pid_q, num_queries, height_out, width_out, BLOCK_Q,
                                        BLOCK_C, GROUP_CHANNELS)
    POINTS: tl.constexpr = KERNEL_H * KERNEL_W
    q64 = q.to(tl.int64)
    offset_rows = offset_ptr + q64 * offset_row + g * (2 * POINTS)
    mask_rows = mask_ptr + q64 * mask_row + g * POINTS
    group = tl.num_programs(1)
    grad_offset_rows = grad_offset_ptr + (q64 * group + g) * (2 * POINTS)
    image_at = b.to(tl.int64) * height * width * channels + g * GROUP_CHANNELS
    image, grad_image = input_ptr + image_at, grad_input_ptr + image_at
    qc_in = q_in[:, None] & c_in[None, :]
    go = tl.load(grad_out_ptr + q64[:, None] * channels + g * GROUP_CHANNELS + c[None, :],
                 mask=qc_in, other=0.0)
    go = go.to(tl.float64) if FP64 else go.to(tl.float32)
    row_max, inv_sum = 0.0, 0.0
    if SOFTMAX:
        logits, row_max, inv_sum = _softmax_stats(mask_rows, q_in, POINTS, BLOCK_P, FP64)
    point = tl.arange(0, BLOCK_P)
    grad_w = tl.zeros([BLOCK_Q, BLOCK_P], dtype=go.dtype)
    for p in range(POINTS):
        i, j = p // KERNEL_H, p % KERNEL_H
        w = _point_weight(mask_rows, q_in, p, row_max, inv_sum, SOFTMAX, FP64)
        at, lw, lh, in00, in01, in10, in11 = _corners(
            offset_rows, q_in, ho, wo, p, i, j, offset_scale, height, width, channels,
            STRIDE_H, STRIDE_W, PAD_H, PAD_W, DILATION_H, DILATION_W, FP64)
        rows = image[:, None] + c[None, :]
        grad_rows = grad_image[:, None] + c[None, :]
        at01, at10 = at + channels, at + width * channels
        at11 = at10 + channels
        m00, m01 = in00[:, None] & c_in[None, :], in01[:, None] & c_in[None, :]
        m10, m11 = in10[:, None] & c_in[None, :], in11[:, None] & c_in[None, :]
        r00 = tl.sum(go * _neighbour(rows, at, m00, go.dtype), 1)  # sum_c grad_out * value
        r01 = tl.sum(go * _neighbour(rows, at01, m01, go.dtype), 1)
        r10 = tl.sum(go * _neighbour(rows, at10, m10, go.dtype), 1)
        r11 = tl.sum(go * _neighbour(rows, at11, m11, go.dtype), 1)
        top, bottom = (1 - lh) * ((1 - lw) * r00 + lw * r01), lh * ((1 - lw) * r10 + lw * r11)
        grad_w = tl.where(point[None, :] == p, (top + bottom)[:, None], grad_w)
        grad_x = w * ((1 - lh) * (r01 - r00) + lh * (r11 - r10)) * offset_scale
        grad_y = w * ((1 - lw) * (r10 - r00) + lw * (r11 - r01)) * offset_scale
        tl.store(grad_offset_rows + 2 * p, grad_x, mask=q_in)
        tl.store(grad_offset_rows + 2 * p + 1, grad_y, mask=q_in)
        w_top, w_bottom = w * (1 - lh), w * lh
        tl.atomic_add(grad_rows + at[:, None], (w_top * (1 - lw))[:, None] * go, mask=m00,
                      sem='relaxed')
        tl.atomic_add(grad_rows + at01[:, None], (w_top * lw)[:, None] * go, mask=m01,
                      sem='relaxed')
        tl.atomic_add(grad_rows + at10[:, None], (w_bottom * (1 - lw))[:, None] * go,
                      mask=m10, sem='relaxed')
        tl.atomic_add(grad_rows + at11[:, None], (w_bottom * lw)[:, None] * go, mask=m11,
                      sem='relaxed')
    if SOFTMAX:  # d logit_p = w_p * (d w_p - sum_p' w_p' d w_p')
        weights = tl.exp(logits - row_max[:, None]) * inv_sum[:, None]
        grad_w = weights * (grad_w - tl.sum(weights * grad_w, 1)[:, None])
    grad_mask = grad_mask_ptr + (q64 * group + g)[:, None] * POINTS + point[None, :]
    tl.store(grad_mask, grad_w, mask=q_in[:, None] & (point < POINTS)[None, :])


def _launch_config(group, group_channels, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w,
                   dilation_h, dilation_w, softmax, dtype):
    """The constexpr arguments shared by both kernels."""
    return dict(GROUP_CHANNELS=group_channels, KERNEL_H=kernel_h, KERNEL_W=kernel_w,
                STRIDE_H=stride_h, STRIDE_W=stride_w, PAD_H=pad_h, PAD_W=pad_w,
                DILATION_H=dilation_h, DILATION_W=dilation_w, SOFTMAX=softmax,
                FP64=dtype == torch.float64, BLOCK_C=triton.next_power_of_2(group_channels),
                BLOCK_P=triton.next_power_of_2(kernel_h * kernel_w))


def _pixel_rows(t):
    """``t (B, Ho, Wo, K)`` with unit channel stride and one stride between pixels (e.g. a
    channel slice of a larger projection), and that stride; other layouts are copied."""
    B, Ho, Wo, _ = t.shape
    row = t.stride(2)
    if t.stride(3) == 1 and t.stride(1) == Wo * row and (B == 1 or t.stride(0) == Ho * Wo * row):
        return t, row
    t = t.contiguous()
    return t, t.shape[3]


def _output_hw(height, width, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h,
               dilation_w):
    return ((height + 2 * pad_h - (dilation_h * (kernel_h - 1) + 1)) // stride_h + 1,
            (width + 2 * pad_w - (dilation_w * (kernel_w - 1) + 1)) // stride_w + 1)


def _check(input, offset, mask, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w,
           dilation_h, dilation_w, group, group_channels):
    """One-line errors for arguments the kernels cannot run; returns ``(Ho, Wo)``."""
    if input.dim() != 4 or input.shape[3] != group * group_channels:
        raise ValueError(f'dcnv3: input must be (B, H, W, G * Cg) = (B, H, W, '
                         f'{group * group_channels}), got {tuple(input.shape)}')
    if min(kernel_h, kernel_w, stride_h, stride_w, dilation_h, dilation_w) < 1:
        raise ValueError('dcnv3: kernel size, stride and dilation must be positive')
    Ho, Wo = _output_hw(*input.shape[1:3], kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w,
                        dilation_h, dilation_w)
    P, B = kernel_h * kernel_w, input.shape[0]
    for name, t, k, shape in (('offset', offset, 2 * P, 'G * P * 2'), ('mask', mask, P, 'G * P')):
        if tuple(t.shape) != (B, Ho, Wo, group * k):
            raise ValueError(f'dcnv3: {name} must be (B, Ho, Wo, {shape}) = '
                             f'{(B, Ho, Wo, group * k)}, got {tuple(t.shape)}')
    if not offset.dtype == mask.dtype == input.dtype:
        raise ValueError(f'dcnv3: input, offset and mask must have one dtype, got '
                         f'{input.dtype}, {offset.dtype}, {mask.dtype}')
    return Ho, Wo


@torch.library.custom_op('stm_mm::dcnv3_triton_forward', mutates_args=())
def dcnv3_triton(input: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor, kernel_h: int,
                 kernel_w: int, stride_h: int, stride_w: int, pad_h: int, pad_w: int,
                 dilation_h: int, dilation_w: int, group: int, group_channels: int,
                 offset_scale: float, softmax: bool) -> torch.Tensor:
    """DCNv3 core on the Triton kernels: ``input (B, H, W, G * Cg)``,
    ``offset (B, Ho, Wo, G * P * 2)``, ``mask (B, Ho, Wo, G * P)`` (logits when ``softmax``,
    else the weights) of one dtype, returning ``(B, Ho, Wo, G * Cg)``. Arguments otherwise as
    :func:`stm_mm.ops.dcnv3_ref.dcnv3_reference`."""
    grid_args = (kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w)
    Ho, Wo = _check(input, offset, mask, *grid_args, group, group_channels)
    input = input.contiguous()
    (offset, offset_row), (mask, mask_row) = _pixel_rows(offset), _pixel_rows(mask)
    B, H, W, C = input.shape
    out = input.new_empty(B, Ho, Wo, C)
    num_queries = B * Ho * Wo
    if num_queries:
        grid = (triton.cdiv(num_queries, FWD_BLOCK_Q), group)
        dcnv3_fwd_kernel[grid](input, offset, mask, out, num_queries, H, W, Ho, Wo, C,
                               offset_row, mask_row, offset_scale, BLOCK_Q=FWD_BLOCK_Q,
                               num_warps=NUM_WARPS,
                               **_launch_config(group, group_channels, *grid_args, softmax,
                                                input.dtype))
    return out


@dcnv3_triton.register_fake
def _(input, offset, mask, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h,
      dilation_w, group, group_channels, offset_scale, softmax):
    Ho, Wo = _output_hw(*input.shape[1:3], kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w,
                        dilation_h, dilation_w)
    return input.new_empty(input.shape[0], Ho, Wo, input.shape[3])


@torch.library.custom_op('stm_mm::dcnv3_triton_backward', mutates_args=())
def dcnv3_triton_backward(grad_output: torch.Tensor, input: torch.Tensor, offset: torch.Tensor,
                          mask: torch.Tensor, kernel_h: int, kernel_w: int, stride_h: int,
                          stride_w: int, pad_h: int, pad_w: int, dilation_h: int,
                          dilation_w: int, group: int, group_channels: int, offset_scale: float,
                          softmax: bool) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients of :func:`dcnv3_triton` w.r.t. input, offset and mask (logits)."""
    grid_args = (kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w)
    input, grad_output = input.contiguous(), grad_output.contiguous()
    (offset_in, offset_row), (mask_in, mask_row) = _pixel_rows(offset), _pixel_rows(mask)
    B, H, W, C = input.shape
    Ho, Wo = offset.shape[1:3]
    accumulate = torch.float64 if input.dtype == torch.float64 else torch.float32
    grad_input = torch.zeros(input.shape, dtype=accumulate, device=input.device)
    grad_offset = torch.empty_like(offset, memory_format=torch.contiguous_format)
    grad_mask = torch.empty_like(mask, memory_format=torch.contiguous_format)
    num_queries = B * Ho * Wo
    if num_queries:
        grid = (triton.cdiv(num_queries, BWD_BLOCK_Q), group)
        dcnv3_bwd_kernel[grid](grad_output, input, offset_in, mask_in, grad_input, grad_offset,
                               grad_mask, num_queries, H, W, Ho, Wo, C, offset_row, mask_row,
                               offset_scale, BLOCK_Q=BWD_BLOCK_Q, num_warps=NUM_WARPS,
                               **_launch_config(group, group_channels, *grid_args, softmax,
                                                input.dtype))
    return grad_input.to(input.dtype), grad_offset, grad_mask


@dcnv3_triton_backward.register_fake
def _(grad_output, input, offset, mask, *args):
    return (torch.empty_like(input, memory_format=torch.contiguous_format),
            torch.empty_like(offset, memory_format=torch.contiguous_format),
            torch.empty_like(mask, memory_format=torch.contiguous_format))


def _save_inputs(ctx, inputs, output):
    ctx.save_for_backward(*inputs[:3])
    ctx.args = inputs[3:]


def _backward(ctx, grad_output):
    grads = dcnv3_triton_backward(grad_output, *ctx.saved_tensors, *ctx.args)
    return (*grads, ) + (None, ) * len(ctx.args)


dcnv3_triton.register_autograd(_backward, setup_context=_save_inputs)


def compile_specs():
    """The GPU launch configurations at U-InternImage-tiny's shapes (Cg = 16, 3x3 kernel,
    stride 1, padding 1; softmax on), fp32 and bf16, as dicts for a cubin / ``ptxas -v``
    check: ``name``, ``kernel``, ``args`` (every parameter: a signature type or a constexpr
    value), ``num_warps``, ``num_stages``. Without the divisibility-by-16 specialisation that
    Triton adds at run time (16-byte aligned tensors, ``C % 16 == 0``) the channel rows cannot
    be vectorised, so these are an upper bound on registers (96 here, about 50 at run time)."""
    specs = []
    sizes = dict(num_queries='i32', height='i32', width='i32', height_out='i32', width_out='i32',
                 channels='i32', offset_row='i32', mask_row='i32', offset_scale='fp32')
    for dtype, ty in ((torch.float32, '*fp32'), (torch.bfloat16, '*bf16')):
        values = dict(sizes, **_launch_config(4, 16, 3, 3, 1, 1, 1, 1, 1, 1, True, dtype))
        for name, kernel, block_q in (('fwd', dcnv3_fwd_kernel, FWD_BLOCK_Q),
                                      ('bwd', dcnv3_bwd_kernel, BWD_BLOCK_Q)):
            values.update(BLOCK_Q=block_q, grad_input_ptr='*fp32')
            args = {arg: values.get(arg, ty) for arg in kernel.arg_names}  # the rest: tensors
            specs.append(dict(name=f'dcnv3_{name}_{ty[1:]}', kernel=kernel, args=args,
                              num_warps=NUM_WARPS, num_stages=2))
    return specs
