"""Triton kernels of the mixers (fused Halo and Swin attention, DCNv3).

Nothing here is imported by ``import stm_mm``: a mixer imports its kernel module only when its
``impl`` resolves to ``'triton'``. :func:`triton_unavailable_reason` says whether the kernels can
run on a device: on CUDA when Triton imports, on the CPU only under Triton's interpreter
(``TRITON_INTERPRET=1`` set before the kernels are imported; the tests run them so).
"""
import importlib.util
import os

import torch


def interpreting():
    """Whether Triton's CPU interpreter is on (``TRITON_INTERPRET=1``)."""
    return os.environ.get('TRITON_INTERPRET', '0') not in ('', '0')


def triton_unavailable_reason(device):
    """Why the Triton kernels cannot run tensors on ``device``, or None when they can."""
    if importlib.util.find_spec('triton') is None:
        return 'triton is not installed'
    device = torch.device(device)
    if device.type == 'cuda':
        return None
    if device.type == 'cpu' and interpreting():
        return None
    return (f'Triton kernels need a CUDA device (or TRITON_INTERPRET=1 on the CPU), '
            f'got {device.type!r}')
