"""Window geometry shared by the window mixers (Halo, Swin): padding, partitioning, indices, masks.

All tensors here are channels-last: feature maps are ``(B, H, W, C)``.
Masks depend only on sizes, so they are built once per size and device and cached.
"""
import functools

import torch
import torch.nn.functional as F

from .attention import masked_fill_value


def cache_per_size(fn):
    """Memoise a mask builder on its (hashable) size/device arguments.

    Under ``torch.compile`` the builder is traced directly instead (Dynamo folds it into the
    graph as a constant), so the Python cache never meets the compiler; likewise under an ONNX
    export, where sizes are traced tensors.
    """
    cached = functools.lru_cache(maxsize=64)(fn)

    @functools.wraps(fn)
    def wrapper(*args):
        if torch.compiler.is_compiling() or torch.jit.is_tracing():
            return fn(*args)
        return cached(*args)

    return wrapper


def pad_to_multiple(x, multiple):
    """Zero-pad ``(B, H, W, C)`` at the bottom and right so H and W are multiples of ``multiple``.

    Returns the padded tensor (``x`` itself when nothing is needed) and the original ``(H, W)``.
    While exporting to ONNX it always pads (by amounts computed in the graph, maybe zero).
    """
    H, W = x.shape[1:3]
    pad_h, pad_w = -H % multiple, -W % multiple
    if torch.onnx.is_in_onnx_export() or pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    return x, (H, W)


def window_partition(x, window):
    """``(B, H, W, C)`` -> ``(B, nH * nW, window * window, C)``, windows and tokens row-major."""
    B, H, W, C = x.shape
    x = x.view(B, H // window, window, W // window, window, C)
    return x.transpose(2, 3).reshape(B, -1, window * window, C)


def window_merge(windows, H, W, window):
    """Inverse of :func:`window_partition`: ``(B, nW, M*M, C)`` -> ``(B, H, W, C)``."""
    B, C = windows.shape[0], windows.shape[-1]
    x = windows.view(B, H // window, W // window, window, window, C)
    return x.transpose(2, 3).reshape(B, H, W, C)


@cache_per_size
def shifted_window_order(H, W, window, shift, device):
    """Shifted windows as one gather: token orders ``(order, inverse)``, int64 ``(H * W,)``.

    ``x.flatten(1, 2).index_select(1, order)`` equals
    ``window_partition(torch.roll(x, (-shift, -shift), (1, 2)), window)`` flattened (one copy
    instead of the three that roll and partition make), and ``index_select(1, inverse)`` on the
    flattened windows undoes it, roll back included.
    """
    tokens = torch.arange(H * W, device=device).view(1, H, W, 1)
    order = window_partition(torch.roll(tokens, (-shift, -shift), (1, 2)), window).reshape(-1)
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(H * W, device=device)
    return order, inverse


def traced_shifted_window_order(Hp, Wp, window, shift):
    """:func:`shifted_window_order` for a 0-dim tensor ``shift`` (and sizes that may be traced),
    built from index arithmetic only, so an exported graph serves every size:
    ``(order, inverse)``, int64 ``(Hp * Wp,)``."""
    ys, xs = torch.arange(Hp), torch.arange(Wp)
    rolled = ((ys[:, None] + shift) % Hp) * Wp + (xs[None, :] + shift) % Wp  # roll by -shift
    order = window_partition(rolled[None, :, :, None], window).reshape(-1)
    # token (y, x) sits at the rolled position (y - shift, x - shift), in window-major order
    ry, rx = (ys - shift) % Hp, (xs - shift) % Wp
    window_index = (ry[:, None] // window) * (Wp // window) + rx[None, :] // window
    inverse = window_index * window * window + (ry[:, None] % window) * window + rx % window
    return order, inverse.reshape(-1)


def relative_position_index(window):
    """Swin's ``(M*M, M*M)`` int64 index into a ``((2M-1)^2, heads)`` relative-position table.

    Entry ``(i, j)`` for query ``i = (yi, xi)`` and key ``j = (yj, xj)`` (row-major in the window)
    is ``(yi - yj + M - 1) * (2M - 1) + (xi - xj + M - 1)``.
    """
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing='ij'))
    coords = coords.flatten(1)  # (2, M*M)
    rel = coords[:, :, None] - coords[:, None, :] + window - 1  # (2, M*M, M*M)
    return rel[0] * (2 * window - 1) + rel[1]


@cache_per_size
def swin_shift_mask(H, W, window, shift, device):
    """Additive mask of a shifted Swin block on a padded ``(H, W)`` map: ``(nW, M*M, M*M)``.

    The map is cut into 9 regions by the row ranges ``[0, H-M), [H-M, H-s), [H-s, H)`` crossed
    with the same column ranges; a query and a key of the same window in different regions get
    -100 (Swin's constant), others 0.
    """
    labels = torch.zeros(1, H, W, 1, device=device)
    region = 0
    for rows in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
        for cols in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
            labels[:, rows, cols, :] = region
            region += 1
    labels = window_partition(labels, window).squeeze(-1)[0]  # (nW, M*M)
    different = labels[:, :, None] != labels[:, None, :]
    return different.float() * -100.0


@cache_per_size
def traced_swin_shift_mask(Hp, Wp, window, shift):
    """:func:`swin_shift_mask` for a 0-dim tensor ``shift`` (all zeros when it is 0):
    ``(nW, M*M, M*M)``, regions labelled by counting the boundaries passed."""
    def region(size):
        position = torch.arange(size)
        return (position >= size - window).long() + (position >= size - shift).long()

    labels = region(Hp)[:, None] * 3 + region(Wp)[None, :]
    labels = window_partition(labels[None, :, :, None], window)[0, :, :, 0]  # (nW, M*M)
    return (labels[:, :, None] != labels[:, None, :]).float() * -100.0


def halo_key_padding_mask(H, W, block, pad_before, pad_after, device):
    """Which keys of every Halo window lie in the zero border outside an ``(H, W)`` map.

    The readable form of :func:`halo_border_logits`: the ``inside`` indicator of the map is
    padded like the keys and cut into the same windows. Returns a bool tensor
    ``(nH * nW, w * w)`` (blocks and keys row-major); True marks a key outside the map.
    """
    inside = torch.ones(1, 1, H, W, device=device)
    inside = F.pad(inside, (pad_before, pad_after, pad_before, pad_after))
    window = block + pad_before + pad_after
    windows = inside.unfold(2, window, block).unfold(3, window, block)  # (1, 1, nH, nW, w, w)
    return windows.reshape(-1, window * window) == 0


@cache_per_size
def halo_border_logits(H, W, block, pad_before, pad_after, device, dtype):
    """Additive logits that mask the keys of every Halo window lying in the map's zero border.

    The key map ``(H, W)`` is padded by ``pad_before`` at the top/left and ``pad_after`` at the
    bottom/right; block ``(I, J)``'s window of side ``w = block + pad_before + pad_after`` starts
    at padded ``(I * block, J * block)``. The border is a frame, so a key is outside the map
    exactly when its row or its column is: the mask splits into a row term and a column term.
    Returns ``(nH, nW, 2 * w)``: ``[..., :w]`` for window rows, ``[..., w:]`` for window columns;
    0 inside, a quarter of the dtype's most negative value outside (a key outside in both
    directions gets half of it, still finite).
    """
    window = block + pad_before + pad_after

    def outside(size):
        start = torch.arange(0, size, block, device=device)[:, None] - pad_before
        position = start + torch.arange(window, device=device)
        return (position < 0) | (position >= size)

    rows, cols = outside(H), outside(W)
    both = torch.cat([rows[:, None, :].expand(-1, len(cols), -1),
                      cols[None, :, :].expand(len(rows), -1, -1)], dim=-1)
    return both.to(dtype) * (masked_fill_value(dtype) / 4)


def overlapping_windows_reference(x, window, stride, heads):
    """Overlapping ``window x window`` windows every ``stride`` pixels, per head.

    ``x (B, Hpad, Wpad, heads * e)`` -> ``(B, nH * nW, heads, window * window, e)`` with
    ``nH = (Hpad - window) // stride + 1``: two ``unfold`` views and one copy.
    """
    B = x.shape[0]
    x = x.unfold(1, window, stride).unfold(2, window, stride)  # (B, nH, nW, heads*e, w, w)
    x = x.unflatten(3, (heads, -1)).permute(0, 1, 2, 3, 5, 6, 4)  # (..., heads, w, w, e)
    return x.reshape(B, -1, heads, window * window, x.shape[-1])


class _OverlappingWindows(torch.autograd.Function):
    """:func:`overlapping_windows_reference` with a faster backward pass.

    The gradient of overlapping windows sums every window's share back into the map. PyTorch's
    ``unfold`` backward does that generically (210 ms of a U-HaloNet-tiny training step on a
    2-core CPU); here the window is cut into ``ceil(window / stride)`` stride-long pieces per
    axis, and each pair of pieces lands on a block grid of the map, so the sum is a few strided
    adds (4 for Halo's 13-pixel windows every 7 pixels): ~4x faster at stage 1 of U-HaloNet-tiny.
    """

    @staticmethod
    def forward(ctx, x, window, stride, heads):
        ctx.geometry = (x.shape, window, stride, heads)
        return overlapping_windows_reference(x, window, stride, heads)

    @staticmethod
    def backward(ctx, grad):
        (B, Hpad, Wpad, C), w, b, heads = ctx.geometry
        nH, nW = (Hpad - w) // b + 1, (Wpad - w) // b + 1
        pieces = -(-w // b)
        grad = grad.view(B, nH, nW, heads, w, w, C // heads)
        out = grad.new_zeros(B, nH + pieces - 1, b, nW + pieces - 1, b, heads, C // heads)
        for py in range(pieces):
            ly = min(b, w - py * b)
            for px in range(pieces):
                lx = min(b, w - px * b)
                piece = grad[:, :, :, :, py * b:py * b + ly, px * b:px * b + lx]
                out[:, py:py + nH, :ly, px:px + nW, :lx] += piece.permute(0, 1, 4, 2, 5, 3, 6)
        out = out.view(B, (nH + pieces - 1) * b, (nW + pieces - 1) * b, C)
        return out[:, :Hpad, :Wpad], None, None, None


def overlapping_windows(x, window, stride, heads):
    """:func:`overlapping_windows_reference` (same values); while autograd records, its backward
    is :class:`_OverlappingWindows`'s strided adds instead of ``unfold``'s generic one."""
    if (torch.is_grad_enabled() and x.requires_grad and not torch.jit.is_tracing()
            and not torch.onnx.is_in_onnx_export()):
        return _OverlappingWindows.apply(x, window, stride, heads)
    return overlapping_windows_reference(x, window, stride, heads)
