"""Attention whose position bias is a sum of a per-row and a per-column term (Halo), training path.

``softmax(scale * q @ k^T + bias) @ v`` with ``bias[..., i, ky * w + kx] = terms[..., i, ky] +
terms[..., i, w + kx]``: the gradient of the bias is needed only summed over key columns (for
the row terms) and over key rows (for the column terms). Through
``scaled_dot_product_attention`` autograd would write the full ``(..., L, w * w)`` bias and its
gradient and reduce it again; :class:`AxisBiasAttention` keeps the attention probabilities of
the forward pass instead and reduces the score gradient directly to the ``2w`` terms.
"""
import torch


def _scores(q, k, terms, scale):
    """``scale * q @ k^T`` plus the row and column terms, ``(..., L, w * w)``."""
    w = terms.shape[-1] // 2
    logits = torch.matmul(q, k.transpose(-2, -1)).mul_(scale)
    grid = logits.view(*logits.shape[:-1], w, w)
    grid.add_(terms[..., :w, None]).add_(terms[..., None, w:])
    return logits


class AxisBiasAttention(torch.autograd.Function):
    """``q (..., L, d)``, ``k (..., w*w, d)``, ``v (..., w*w, dv)``, ``terms (..., L, 2w)`` ->
    ``(..., L, dv)``; see the module docstring. Computes in ``q``'s dtype (softmax and row sums
    at least in float32); ``terms`` (float32 under autocast) gets its gradient in its dtype."""

    @staticmethod
    def forward(ctx, q, k, v, terms, scale):
        with torch.autocast(q.device.type, enabled=False):
            k, v = k.to(q.dtype), v.to(q.dtype)
            logits = _scores(q, k, terms.to(q.dtype), scale)
            accumulate = torch.promote_types(q.dtype, torch.float32)
            probs = logits.softmax(-1, dtype=accumulate).to(q.dtype)
            out = torch.matmul(probs, v)
        ctx.save_for_backward(q, k, v, probs, out)
        ctx.scale, ctx.terms_dtype = scale, terms.dtype
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, probs, out = ctx.saved_tensors
        w = int(round(k.shape[-2]**0.5))
        with torch.autocast(q.device.type, enabled=False):
            grad_out = grad_out.to(q.dtype)
            # d logits = P * (dP - rowsum(dO * O))
            accumulate = torch.promote_types(q.dtype, torch.float32)
            delta = (grad_out * out).sum(-1, keepdim=True, dtype=accumulate).to(q.dtype)
            grad_logits = torch.matmul(grad_out, v.transpose(-2, -1)).sub_(delta).mul_(probs)
            grid = grad_logits.view(*grad_logits.shape[:-1], w, w)
            grad_terms = torch.cat([grid.sum(-1), grid.sum(-2)], dim=-1).to(ctx.terms_dtype)
            grad_q = torch.matmul(grad_logits, k).mul_(ctx.scale)
            grad_k = torch.matmul(grad_logits.transpose(-2, -1), q).mul_(ctx.scale)
            grad_v = torch.matmul(probs.transpose(-2, -1), grad_out)
        return grad_q, grad_k, grad_v, grad_terms, None


def axis_bias_attention(q, k, v, terms, scale):
    """:class:`AxisBiasAttention` (shapes there); the gradient never materialises the bias."""
    return AxisBiasAttention.apply(q, k, v, terms, scale)
