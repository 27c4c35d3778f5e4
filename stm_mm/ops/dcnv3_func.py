"""Autograd function around the compiled DCNv3 kernels of ``stm_mm._ext``.

The extension is optional: when it was not built (or fails to load), ``_ext`` is None and
:func:`compiled_unavailable_reason` says why, so that :mod:`stm_mm.ops.dcnv3` can fall back to
the PyTorch reference.
"""
import torch
from torch.autograd import Function
from torch.autograd.function import once_differentiable

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


class DCNv3Function(Function):
    """DCNv3 core on the compiled kernels; arguments as
    :func:`stm_mm.ops.dcnv3_ref.dcnv3_reference`: ``input (B, H, W, G * Cg)``,
    ``offset (B, Ho, Wo, G * P * 2)``, ``mask (B, Ho, Wo, G * P)`` of one dtype and device,
    returning ``(B, Ho, Wo, G * Cg)``. Differentiable once (no double backward)."""

    @staticmethod
    def forward(ctx, input, offset, mask, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w,
                dilation_h, dilation_w, group, group_channels, offset_scale):
        ctx.args = (kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h,
                    dilation_w, group, group_channels, float(offset_scale))
        ctx.save_for_backward(input, offset, mask)
        return _ext.dcnv3_forward(input, offset, mask, *ctx.args)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        input, offset, mask = ctx.saved_tensors
        grad_input, grad_offset, grad_mask = _ext.dcnv3_backward(grad_output, input, offset,
                                                                 mask, *ctx.args)
        return (grad_input, grad_offset, grad_mask) + (None, ) * len(ctx.args)
