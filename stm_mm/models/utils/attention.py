"""Multi-head attention core shared by the attention mixers.

``attention`` goes through ``torch.nn.functional.scaled_dot_product_attention`` so PyTorch can
pick a fused kernel; ``reference_attention`` materialises the score matrix and is the readable
reference that tests and ``tools/analysis_tools/benchmark.py --reference`` compare against.
Every position-dependent term (relative position bias, masks) is folded into one additive
``bias`` by the caller.
"""
import contextlib
import threading

import torch
import torch.nn.functional as F

_state = threading.local()


@contextlib.contextmanager
def use_reference_attention(enabled=True):
    """Within the context, ``attention`` runs the unfused reference (for tests and benchmarks)."""
    previous = getattr(_state, 'reference', False)
    _state.reference = enabled
    try:
        yield
    finally:
        _state.reference = previous


def reference_attention(q, k, v, bias=None, scale=None):
    """``softmax(q @ k^T * scale + bias) @ v``, computed step by step.

    Args:
        q: ``(..., Lq, D)``; k: ``(..., Lk, D)``; v: ``(..., Lk, Dv)``.
        bias: additive logits broadcastable to ``(..., Lq, Lk)``, or None.
        scale: defaults to ``D ** -0.5``.
    Returns:
        ``(..., Lq, Dv)``.
    """
    scale = q.shape[-1]**-0.5 if scale is None else scale
    logits = (q * scale) @ k.transpose(-2, -1)
    if bias is not None:
        logits = logits + bias
    return logits.softmax(dim=-1) @ v


def attention(q, k, v, bias=None, scale=None):
    """Same contract as :func:`reference_attention`, through the fused SDPA kernel."""
    if getattr(_state, 'reference', False):
        return reference_attention(q, k, v, bias, scale)
    if bias is not None:
        bias = bias.to(q.dtype)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=scale)


def masked_fill_value(dtype):
    """A large finite negative logit for masked keys: never ``-inf``, so no row turns into NaN."""
    return torch.finfo(dtype).min
