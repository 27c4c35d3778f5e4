"""DCNv3 entry point: the one function every caller uses.

:func:`dcnv3` runs the compiled kernels of ``stm_mm._ext`` (:mod:`stm_mm.ops.dcnv3_func`) when
they are built for the tensors' device and dtype, and otherwise the pure-PyTorch reference
(:mod:`stm_mm.ops.dcnv3_ref`), warning once per reason. The choice can be forced with the
``impl`` argument or the ``STM_MM_DCNV3_IMPL`` environment variable (``compiled``,
``pytorch`` or ``auto``; the argument wins). While exporting to ONNX it always runs the
reference, which exports through GridSample (a standard ONNX op).
"""
import os
import warnings

import torch

from . import dcnv3_func
from .dcnv3_ref import dcnv3_reference

IMPL_ENV = 'STM_MM_DCNV3_IMPL'
IMPLS = ('auto', 'compiled', 'pytorch')
BUILD_HINT = ('build it with `pip install -e .` in the stm_mm repository (with FORCE_CUDA=1 for '
              'the CUDA kernels)')


class DCNv3FallbackWarning(UserWarning):
    """The compiled DCNv3 op is unavailable and the slower PyTorch reference runs instead."""


_warned = set()  # reasons already reported by a DCNv3FallbackWarning


def dcnv3_available(device='cpu', dtype=torch.float32):
    """Whether :func:`dcnv3` can run the compiled op for tensors on ``device`` of ``dtype``."""
    return dcnv3_func.compiled_unavailable_reason(device, dtype) is None


def resolve_impl(impl=None):
    """The requested implementation: ``impl`` if given, else ``$STM_MM_DCNV3_IMPL``, else
    ``'auto'``."""
    choice = impl if impl is not None else os.environ.get(IMPL_ENV, 'auto')
    if choice not in IMPLS:
        source = 'impl' if impl is not None else IMPL_ENV
        raise ValueError(f'dcnv3: {source} must be one of {IMPLS}, got {choice!r}')
    return choice


def dcnv3(input, offset, mask, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h,
          dilation_w, group, group_channels, offset_scale, impl=None):
    """DCNv3 core; arguments and shapes as :func:`stm_mm.ops.dcnv3_ref.dcnv3_reference`.

    Args:
        input: ``(B, H, W, G * Cg)``. offset: ``(B, Ho, Wo, G * P * 2)``.
        mask: ``(B, Ho, Wo, G * P)``. The rest: the sampling grid, G, Cg and offset_scale.
        impl: ``'compiled'``, ``'pytorch'`` or ``'auto'`` (default: ``$STM_MM_DCNV3_IMPL``, else
            ``'auto'``: compiled when available, else the reference with a one-time warning).
    Returns:
        ``(B, Ho, Wo, G * Cg)`` in the promoted dtype of input and mask (as the reference).
        The CPU kernels compute float16 / bfloat16 in float32 (e.g. under CPU autocast).
    Raises:
        RuntimeError: ``impl='compiled'`` when the compiled op cannot run these tensors, or
            shapes that do not fit together (from the compiled op's checks).
    """
    choice = 'pytorch' if torch.onnx.is_in_onnx_export() else resolve_impl(impl)
    args = (kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, group,
            group_channels, offset_scale)
    if choice == 'pytorch':
        return dcnv3_reference(input, offset, mask, *args)
    dtype = torch.promote_types(input.dtype, mask.dtype)
    reason = dcnv3_func.compiled_unavailable_reason(input.device, dtype)
    if reason is None:
        compute = dcnv3_func.kernel_dtype(input.device.type, dtype)
        input, offset, mask = (t.to(compute) for t in (input, offset, mask))
        return dcnv3_func.dcnv3_compiled(input, offset, mask, *args[:-1],
                                        float(offset_scale)).to(dtype)
    if choice == 'compiled':
        raise RuntimeError(f'dcnv3: impl=compiled was requested but {reason}; {BUILD_HINT}.')
    if reason not in _warned:
        _warned.add(reason)
        warnings.warn(
            f'stm_mm: compiled DCNv3 unavailable ({reason}); running the slower PyTorch '
            f'reference instead. To use the compiled op, {BUILD_HINT}; set {IMPL_ENV}=pytorch '
            'to choose the reference explicitly.', DCNv3FallbackWarning, stacklevel=2)
    return dcnv3_reference(input, offset, mask, *args)
