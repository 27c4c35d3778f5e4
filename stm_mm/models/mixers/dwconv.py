"""7x7 depth-wise convolution between two point-wise projections (the unified ConvNeXt mixer)."""
import torch.nn as nn

from ...registry import TOKEN_MIXERS
from ..utils import ChannelsLastDepthwiseConv2d
from .base import TokenMixer


@TOKEN_MIXERS.register_module('dwconv')
class DepthwiseConvMixer(TokenMixer):
    """``output_proj(dwconv_kxk(input_proj(x)))`` with no activation or norm in between.

    Args:
        dim: channels C. num_heads, stage_index, block_index: unused (mixer contract).
        kernel_size: side of the depth-wise kernel (7).
        projections: False drops the two point-wise projections (ConvNeXt's own block).
    Shapes: ``(B, H, W, C)`` -> ``(B, H, W, C)``.
    """
    block_norm_eps = 1e-6

    def __init__(self, dim, num_heads=None, stage_index=0, block_index=0, kernel_size=7,
                 projections=True):
        super().__init__()
        self.input_proj = nn.Linear(dim, dim) if projections else nn.Identity()
        self.dwconv = ChannelsLastDepthwiseConv2d(dim, kernel_size)
        self.output_proj = nn.Linear(dim, dim) if projections else nn.Identity()

    def forward(self, x):
        x = self.input_proj(x)
        x = self.dwconv(x)
        return self.output_proj(x)
