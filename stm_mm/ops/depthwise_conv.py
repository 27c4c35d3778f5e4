"""Depth-wise 2-D convolution on channels-last maps ``(B, H, W, C)`` with a compiled CPU backward.

The forward pass and the input gradient are PyTorch's own convolution (oneDNN on the CPU); the
weight and bias gradients come from ``stm_mm._ext`` (``ops/csrc/cpu/depthwise_conv_cpu.cpp``).
For channels-last maps oneDNN's 7x7 depth-wise weight and bias gradients take ~10x the forward
pass (11 ms against 1 ms at 8 x 56 x 56 x 64 on a 2-core CPU); the compiled kernel takes 2.4 ms.
For 3x3 kernels oneDNN has a specialised kernel that is faster than this one, so
:func:`use_compiled_backward` keeps PyTorch's backward there.
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from .dcnv3_func import _ext

MIN_COMPILED_KERNEL = 5  # smaller kernels: oneDNN's own backward is faster (measured, 3x3)


def use_compiled_backward(x, weight, padding, stride=(1, 1), dilation=(1, 1)):
    """Whether :func:`depthwise_conv2d_nhwc` can and should run for this call: training on the
    CPU in float32/float64 with the extension built, stride and dilation 1, kernel >= 5."""
    return (_ext is not None and x.device.type == 'cpu'
            and x.dtype in (torch.float32, torch.float64) and weight.dtype == x.dtype
            and tuple(stride) == (1, 1) and tuple(dilation) == (1, 1)
            and min(weight.shape[-2:]) >= MIN_COMPILED_KERNEL and torch.is_grad_enabled())


def _conv_nchw_view(x, weight, bias, pad_h, pad_w):
    return F.conv2d(x.permute(0, 3, 1, 2), weight, bias, 1, (pad_h, pad_w), 1, x.shape[-1])


@torch.library.custom_op('stm_mm::depthwise_conv2d_nhwc', mutates_args=())
def depthwise_conv2d_nhwc(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                          pad_h: int, pad_w: int) -> torch.Tensor:
    """Depth-wise convolution, stride 1: ``x (B, H, W, C)``, ``weight (C, 1, kh, kw)``,
    ``bias (C)`` or None -> ``(B, Ho, Wo, C)``, ``Ho = H + 2 * pad_h - kh + 1``. Equals
    ``nn.Conv2d(C, C, (kh, kw), padding=(pad_h, pad_w), groups=C)`` on ``x.permute(0, 3, 1, 2)``,
    permuted back. A ``torch.library`` custom op (no graph break under ``torch.compile``)."""
    return _conv_nchw_view(x, weight, bias, pad_h, pad_w).permute(0, 2, 3, 1).contiguous()


@depthwise_conv2d_nhwc.register_fake
def _(x, weight, bias, pad_h, pad_w):
    B, H, W, C = x.shape
    kh, kw = weight.shape[-2:]
    return x.new_empty(B, H + 2 * pad_h - kh + 1, W + 2 * pad_w - kw + 1, C)


@torch.library.custom_op('stm_mm::depthwise_conv2d_nhwc_param_grads', mutates_args=())
def depthwise_conv2d_nhwc_param_grads(grad_output: torch.Tensor, x: torch.Tensor, kernel_h: int,
                                      kernel_w: int, pad_h: int,
                                      pad_w: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(grad_weight (C, 1, kh, kw), grad_bias (C))`` of :func:`depthwise_conv2d_nhwc` from
    ``grad_output (B, Ho, Wo, C)`` and its input ``x (B, H, W, C)`` (compiled CPU kernel)."""
    grad_weight, grad_bias = _ext.depthwise_conv2d_param_grads(grad_output.contiguous(),
                                                               x.contiguous(), kernel_h, kernel_w,
                                                               pad_h, pad_w)
    return grad_weight, grad_bias


@depthwise_conv2d_nhwc_param_grads.register_fake
def _(grad_output, x, kernel_h, kernel_w, pad_h, pad_w):
    C = x.shape[-1]
    return x.new_empty(C, 1, kernel_h, kernel_w), x.new_empty(C)


def _save_inputs(ctx, inputs, output):
    x, weight, bias, pad_h, pad_w = inputs
    ctx.save_for_backward(x, weight)
    ctx.has_bias = bias is not None
    ctx.padding = (pad_h, pad_w)


def _backward(ctx, grad_output):
    x, weight = ctx.saved_tensors
    pad_h, pad_w = ctx.padding
    grad_x = grad_weight = grad_bias = None
    if ctx.needs_input_grad[0]:
        C = x.shape[-1]
        grad_x = torch.ops.aten.convolution_backward(
            grad_output.permute(0, 3, 1, 2), x.permute(0, 3, 1, 2), weight, None, [1, 1],
            [pad_h, pad_w], [1, 1], False, [0, 0], C,
            [True, False, False])[0].permute(0, 2, 3, 1)
    if ctx.needs_input_grad[1] or (ctx.has_bias and ctx.needs_input_grad[2]):
        grad_weight, grad_bias = depthwise_conv2d_nhwc_param_grads(
            grad_output, x, weight.shape[-2], weight.shape[-1], pad_h, pad_w)
    return grad_x, grad_weight, grad_bias if ctx.has_bias else None, None, None


depthwise_conv2d_nhwc.register_autograd(_backward, setup_context=_save_inputs)
