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
    """Within the context the attention mixers run their straightforward reference: ``attention``
    materialises the scores, and Halo/Swin build biases and windows the readable way (tests
    and ``benchmark.py --reference`` compare the fast path against it)."""
    previous = getattr(_state, 'reference', False)
    _state.reference = enabled
    try:
        yield
    finally:
        _state.reference = previous


def reference_enabled():
    """True inside :func:`use_reference_attention`: mixers then run their readable reference
    code (explicit masks, per-row einsums, roll + partition) as well as the unfused core."""
    return getattr(_state, 'reference', False)


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
    """Same contract as :func:`reference_attention`, through the fused SDPA kernel.

    The fused CPU kernels only take 4-D tensors (a 5-D call silently falls back to an unfused
    path several times slower), so inputs with several batch-like dims, e.g.
    ``(B, windows, heads, L, D)``, are folded first. A bias that is the same for every window
    (``(heads, L, S)``) folds the leading dims into the batch (views of q, k, v; the bias is
    broadcast, not copied); a per-window bias shared by the batch is copied per image and the
    windows still fold into the batch; a bias with its own batch dim (Halo) folds windows into
    heads.
    """
    if reference_enabled():
        return reference_attention(q, k, v, bias, scale)
    lead = q.shape[:-2]
    if len(lead) > 2:
        if bias is not None:
            bias = bias.reshape((1, ) * (len(lead) + 2 - bias.dim()) + tuple(bias.shape))
        if bias is None or all(n == 1 for n in bias.shape[:-3]):
            q, k, v = (t.reshape(-1, *t.shape[-3:]) for t in (q, k, v))
            if bias is not None:
                bias = bias.reshape(1, *bias.shape[-3:])
        elif bias.shape[0] == 1:
            # a per-window bias shared by the batch (shifted Swin): copying it once per image is
            # cheaper than copying q, k and v into a windows-as-heads layout
            q, k, v = (t.reshape(-1, *t.shape[-3:]) for t in (q, k, v))
            bias = bias.expand(*lead, *bias.shape[-2:]).reshape(-1, *bias.shape[-3:])
        else:
            q, k, v = (t.reshape(lead[0], -1, *t.shape[-2:]) for t in (q, k, v))
            bias = bias.expand(bias.shape[0], *lead[1:], *bias.shape[-2:])
            bias = bias.reshape(bias.shape[0], -1, *bias.shape[-2:])
    if bias is not None:
        bias = bias.to(q.dtype)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=scale)
    return out.reshape(*lead, *out.shape[-2:])


def masked_fill_value(dtype):
    """A large finite negative logit for masked keys: never ``-inf``, so no row turns into NaN."""
    return torch.finfo(dtype).min
