"""DCNv3 entry points: the functions every caller uses.

:func:`dcnv3` takes normalised modulation weights (DCNv3's ``mask``); :func:`dcnv3_softmax` takes
their logits and applies the softmax over each group's points itself (inside the Triton kernels,
in PyTorch before the other implementations). Implementations: ``triton``
(:mod:`stm_mm.ops.triton.dcnv3`), ``compiled`` (``stm_mm._ext``, :mod:`stm_mm.ops.dcnv3_func`)
and ``pytorch`` (the reference, :mod:`stm_mm.ops.dcnv3_ref`). The choice comes from the ``impl``
argument, else the ``STM_MM_DCNV3_IMPL`` environment variable, else ``auto``: Triton on CUDA
when it is available, otherwise the compiled kernels when they are built for the tensors' device
and dtype, otherwise the reference with a warning once per reason. While exporting to ONNX it
always runs the reference, which exports through GridSample (a standard ONNX op).
"""
import warnings

import torch

from . import dcnv3_func
from .dcnv3_ref import dcnv3_reference
from .impl_switch import impl_env_var, requested_impl
from .triton import triton_unavailable_reason

IMPL_ENV = impl_env_var('dcnv3')
IMPLS = ('triton', 'compiled', 'pytorch')
BUILD_HINT = ('build it with `pip install -e .` in the stm_mm repository (with FORCE_CUDA=1 for '
              'the CUDA kernels)')


class DCNv3FallbackWarning(UserWarning):
    """The compiled DCNv3 op is unavailable and the slower PyTorch reference runs instead."""


_warned = set()  # reasons already reported by a DCNv3FallbackWarning


def dcnv3_available(device='cpu', dtype=torch.float32):
    """Whether :func:`dcnv3` can run the compiled op for tensors on ``device`` of ``dtype``."""
    return dcnv3_func.compiled_unavailable_reason(device, dtype) is None


def resolve_impl(impl=None, device=None, dtype=torch.float32):
    """The implementation that runs: ``impl`` if given, else ``$STM_MM_DCNV3_IMPL``, else
    ``'auto'``; with a ``device``, ``'auto'`` is resolved to ``'triton'`` on CUDA when Triton is
    available, else ``'compiled'`` when the extension runs ``dtype`` there, else ``'pytorch'``
    (warning once per reason)."""
    choice = requested_impl('dcnv3', impl, IMPLS)
    if torch.onnx.is_in_onnx_export():
        return 'pytorch'
    if choice != 'auto' or device is None:
        return choice
    device = torch.device(device)
    if device.type == 'cuda' and triton_unavailable_reason(device) is None:
        return 'triton'
    reason = dcnv3_func.compiled_unavailable_reason(device, dtype)
    if reason is None:
        return 'compiled'
    if reason not in _warned:
        _warned.add(reason)
        warnings.warn(
            f'stm_mm: compiled DCNv3 unavailable ({reason}); running the slower PyTorch '
            f'reference instead. To use the compiled op, {BUILD_HINT}; set {IMPL_ENV}=pytorch '
            'to choose the reference explicitly.', DCNv3FallbackWarning, stacklevel=3)
    return 'pytorch'


def _run(choice, input, offset, mask, args, softmax):
    """Run ``choice`` on ``mask`` (logits when ``softmax``) in the promoted dtype of input and
    mask."""
    dtype = torch.promote_types(input.dtype, mask.dtype)
    if choice == 'triton':
        reason = triton_unavailable_reason(input.device)
        if reason is not None:
            raise RuntimeError(f'dcnv3: impl=triton was requested but {reason}.')
        from .triton.dcnv3 import dcnv3_triton
        input, offset, mask = (t.to(dtype) for t in (input, offset, mask))
        return dcnv3_triton(input, offset, mask, *args[:-1], float(args[-1]), softmax)
    if softmax:
        B, Ho, Wo, _ = mask.shape
        mask = mask.view(B, Ho, Wo, args[-3], -1).softmax(-1).view(B, Ho, Wo, -1)
    if choice == 'pytorch':
        return dcnv3_reference(input, offset, mask, *args)
    reason = dcnv3_func.compiled_unavailable_reason(input.device, dtype)
    if reason is not None:
        raise RuntimeError(f'dcnv3: impl=compiled was requested but {reason}; {BUILD_HINT}.')
    compute = dcnv3_func.kernel_dtype(input.device.type, dtype)
    input, offset, mask = (t.to(compute) for t in (input, offset, mask))
    return dcnv3_func.dcnv3_compiled(input, offset, mask, *args[:-1],
                                    float(args[-1])).to(dtype)


def dcnv3(input, offset, mask, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h,
          dilation_w, group, group_channels, offset_scale, impl=None):
    """DCNv3 core; arguments and shapes as :func:`stm_mm.ops.dcnv3_ref.dcnv3_reference`.

    Args:
        input: ``(B, H, W, G * Cg)``. offset: ``(B, Ho, Wo, G * P * 2)``.
        mask: ``(B, Ho, Wo, G * P)``. The rest: the sampling grid, G, Cg and offset_scale.
        impl: ``'triton'``, ``'compiled'``, ``'pytorch'`` or ``'auto'`` (default:
            ``$STM_MM_DCNV3_IMPL``, else ``'auto'``: Triton on CUDA, else compiled when
            available, else the reference with a one-time warning).
    Returns:
        ``(B, Ho, Wo, G * Cg)`` in the promoted dtype of input and mask (as the reference).
        The CPU kernels compute float16 / bfloat16 in float32 (e.g. under CPU autocast), the
        Triton kernels sum in float32 (float64 for float64).
    Raises:
        RuntimeError: ``impl='compiled'`` / ``'triton'`` when that op cannot run these tensors,
            or shapes that do not fit together (the compiled op's checks; the Triton op raises
            ValueError).
    """
    args = (kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, group,
            group_channels, offset_scale)
    dtype = torch.promote_types(input.dtype, mask.dtype)
    choice = resolve_impl(impl, input.device, dtype)
    return _run(choice, input, offset, mask, args, softmax=False)


def dcnv3_softmax(input, offset, mask_logits, kernel_h, kernel_w, stride_h, stride_w, pad_h,
                  pad_w, dilation_h, dilation_w, group, group_channels, offset_scale, impl=None):
    """:func:`dcnv3` with ``mask = softmax(mask_logits)`` over each group's P points.

    ``mask_logits (B, Ho, Wo, G * P)``; gradients flow to the logits. The Triton kernels compute
    the softmax in float32 (float64 for float64) inside the kernels; the other implementations
    apply ``torch.softmax`` first. ``offset`` and ``mask_logits`` may be channel slices of one
    projection ``(B, Ho, Wo, K)`` (the Triton kernels read them in place).
    """
    args = (kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, group,
            group_channels, offset_scale)
    dtype = torch.promote_types(input.dtype, mask_logits.dtype)
    choice = resolve_impl(impl, input.device, dtype)
    return _run(choice, input, offset, mask_logits, args, softmax=True)
