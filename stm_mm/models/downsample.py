"""Stem and transition layers: the unified overlapped design and the originals (Table II)."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from .utils import LayerNorm2d

DOWNSAMPLE_TYPES = ('overlap', 'patch_merging', 'convnext')


class PatchMerging(nn.Module):
    """Swin's transition: concatenate each 2x2 neighbourhood, LayerNorm, linear projection.

    Neighbours are concatenated in the order (0,0), (1,0), (0,1), (1,1) (row, column); odd sides
    are zero-padded first. Shapes: ``(B, C, H, W)`` -> ``(B, C_out, ceil(H/2), ceil(W/2))``.
    """

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.norm = nn.LayerNorm(4 * in_channels, eps=1e-5)
        self.reduction = nn.Linear(4 * in_channels, out_channels, bias=False)

    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        H, W = x.shape[1:3]
        if H % 2 or W % 2:
            x = F.pad(x, (0, 0, 0, W % 2, 0, H % 2))
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]],
                      dim=-1)
        return self.reduction(self.norm(x)).permute(0, 3, 1, 2)


def build_stem(kind, in_channels, out_channels):
    """Stride-4 stem, ``(B, in, H, W)`` -> ``(B, out, H/4, W/4)``.

    ``overlap``: two 3x3 stride-2 convs (bias) with LN2d (eps 1e-6) and GELU between;
    ``patch_merging``: Swin's 4x4 stride-4 patch embedding + LN2d (eps 1e-5);
    ``convnext``: ConvNeXt's 4x4 stride-4 conv + LN2d (eps 1e-6).
    """
    if kind == 'overlap':
        hidden = int(out_channels * 0.5)
        return nn.Sequential(
            nn.Conv2d(in_channels, hidden, 3, stride=2, padding=1), LayerNorm2d(hidden, eps=1e-6),
            nn.GELU(), nn.Conv2d(hidden, out_channels, 3, stride=2, padding=1),
            LayerNorm2d(out_channels, eps=1e-6))
    eps = 1e-5 if kind == 'patch_merging' else 1e-6
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 4, stride=4), LayerNorm2d(out_channels, eps=eps))


def build_transition(kind, in_channels, out_channels):
    """Stride-2 transition between stages, ``(B, in, H, W)`` -> ``(B, out, H/2, W/2)``.

    ``overlap``: 3x3 stride-2 conv (no bias) + LN2d (eps 1e-6); ``patch_merging``: Swin's
    :class:`PatchMerging`; ``convnext``: LN2d (eps 1e-6) + 2x2 stride-2 conv (bias).
    """
    if kind == 'overlap':
        return nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1, bias=False),
            LayerNorm2d(out_channels, eps=1e-6))
    if kind == 'patch_merging':
        return PatchMerging(in_channels, out_channels)
    return nn.Sequential(
        LayerNorm2d(in_channels, eps=1e-6), nn.Conv2d(in_channels, out_channels, 2, stride=2))
