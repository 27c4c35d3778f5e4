"""Autograd function around the compiled DCNv3 kernels of ``stm_mm._ext``.

The extension is optional: when it was not built (or fails to load), ``_ext`` is None and
:func:`compiled_unavailable_reason` says why, so that :mod:`stm_mm.ops.dcnv3` can fall back to
the PyTorch reference.
"""
from typing import Tuple

import torch

try:
    from .. import _ext
    _EXT_ERROR = None
except ImportError as err:  # not built, or built against another torch
    _ext = None
    _EXT_ERROR = err

# dtypes the kernels of each device type accept
KERNEL_DTYPES = {
    'cpu': (torch.float32, torch.float64),
    'cuda': (torch.float32, torch.float64, torch.float16, torch.bfloat16),
}


def kernel_dtype(device_type, dtype):
    """The dtype the kernels of ``device_type`` compute ``dtype`` in: itself where supported,
    float32 for float16 / bfloat16 on devices without half kernels (the CPU), else None."""
    supported = KERNEL_DTYPES.get(device_type, ())
    if dtype in supported:
        return dtype
    if dtype in (torch.float16, torch.bfloat16) and torch.float32 in supported:
        return torch.float32
    return None


def compiled_unavailable_reason(device, dtype):
    """Why the compiled op cannot run on ``device`` with ``dtype``, or None when it can."""
    device = torch.device(device)
    if _ext is None:
        return f'stm_mm._ext could not be imported ({type(_EXT_ERROR).__name__}: {_EXT_ERROR})'
    if device.type not in KERNEL_DTYPES:
        return f'stm_mm._ext has no kernels for device type {device.type!r}'
    if device.type == 'cuda' and not _ext.with_cuda():
        return 'stm_mm._ext was built without CUDA kernels'
    if kernel_dtype(device.type, dtype) is None:
        names = ', '.join(str(t).replace('torch.', '') for t in KERNEL_DTYPES[device.type])
        return (f'the {device.type} kernels support {names}, '
                f'not {str(dtype).replace("torch.", "")}')
    return None


def _output_shape(input, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h,
                  dilation_w, group, group_channels):
    B, H, W, _ = input.shape
    height = (H + 2 * pad_h - (dilation_h * (kernel_h - 1) + 1)) // stride_h + 1
    width = (W + 2 * pad_w - (dilation_w * (kernel_w - 1) + 1)) // stride_w + 1
    return B, height, width, group * group_channels


@torch.library.custom_op('stm_mm::dcnv3_forward', mutates_args=())
def dcnv3_compiled(input: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor, kernel_h: int,
                   kernel_w: int, stride_h: int, stride_w: int, pad_h: int, pad_w: int,
                   dilation_h: int, dilation_w: int, group: int, group_channels: int,
                   offset_scale: float) -> torch.Tensor:
    """DCNv3 core on the compiled kernels; arguments as
    :func:`stm_mm.ops.dcnv3_ref.dcnv3_reference`: ``input (B, H, W, G * Cg)``,
    ``offset (B, Ho, Wo, G * P * 2)``, ``mask (B, Ho, Wo, G * P)`` of one dtype and device,
    returning ``(B, Ho, Wo, G * Cg)``. A ``torch.library`` custom op, so ``torch.compile``
    keeps it in the graph (no graph break); differentiable once (no double backward)."""
    return _ext.dcnv3_forward(input, offset, mask, kernel_h, kernel_w, stride_h, stride_w, pad_h,
                              pad_w, dilation_h, dilation_w, group, group_channels, offset_scale)


@dcnv3_compiled.register_fake
def _(input, offset, mask, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h,
      dilation_w, group, group_channels, offset_scale):
    return input.new_empty(_output_shape(input, kernel_h, kernel_w, stride_h, stride_w, pad_h,
                                         pad_w, dilation_h, dilation_w, group, group_channels))


@torch.library.custom_op('stm_mm::dcnv3_backward', mutates_args=())
def dcnv3_compiled_backward(grad_output: torch.Tensor, input: torch.Tensor, offset: torch.Tensor,
                            mask: torch.Tensor, kernel_h: int, kernel_w: int, stride_h: int,
                            stride_w: int, pad_h: int, pad_w: int, dilation_h: int,
                            dilation_w: int, group: int, group_channels: int,
                            offset_scale: float) -> Tuple[torch.Tensor, torch.Tensor,
                                                          torch.Tensor]:
    """Gradients of :func:`dcnv3_compiled` w.r.t. input, offset and mask."""
    grads = _ext.dcnv3_backward(grad_output.contiguous(), input, offset, mask, kernel_h, kernel_w,
                                stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, group,
                                group_channels, offset_scale)
    return tuple(grads)


@dcnv3_compiled_backward.register_fake
def _(grad_output, input, offset, mask, *args):
    return torch.empty_like(input), torch.empty_like(offset), torch.empty_like(mask)


def _save_inputs(ctx, inputs, output):
    ctx.save_for_backward(*inputs[:3])
    ctx.args = inputs[3:]


def _backward(ctx, grad_output):
    grads = dcnv3_compiled_backward(grad_output, *ctx.saved_tensors, *ctx.args)
    return (*grads, ) + (None, ) * len(ctx.args)


dcnv3_compiled.register_autograd(_backward, setup_context=_save_inputs)
