"""DCNv3 (InternImage's deformable convolution) as the authors built it for U-InternImage."""
import torch.nn as nn

from ...ops import dcnv3
from ...registry import TOKEN_MIXERS
from ..utils import ChannelsLastDepthwiseConv2d
from .base import TokenMixer


@TOKEN_MIXERS.register_module('dcnv3')
class DCNv3Mixer(TokenMixer):
    """3x3 deformable convolution with learned offsets and softmax-normalised modulation.

    Offsets and modulation come from ``GELU(LN(dwconv3x3(x)))``; values from ``value_proj(x)``.
    Each of the ``G = num_heads`` groups samples its channels bilinearly at the 9 points of a 3x3
    grid moved by the offsets (zero outside the map) and sums them with softmax(P) weights.

    Args:
        dim: channels C. num_heads: groups G. kernel_size: K (3 -> P = 9 points).
        offset_scale: multiplies the offsets (1.0). dw_kernel_size: offset branch's kernel (3).
    Shapes: ``(B, H, W, C)`` -> ``(B, H, W, C)``.
    """

    def __init__(self, dim, num_heads, stage_index=0, block_index=0, kernel_size=3,
                 offset_scale=1.0, dw_kernel_size=3):
        super().__init__()
        self.group = num_heads
        self.group_channels = dim // num_heads
        self.kernel_size = kernel_size
        self.offset_scale = offset_scale
        self.num_points = kernel_size * kernel_size
        self.offset_dwconv = ChannelsLastDepthwiseConv2d(dim, dw_kernel_size)
        self.offset_norm = nn.LayerNorm(dim, eps=1e-5)
        self.offset_act = nn.GELU()
        self.sampling_offsets = nn.Linear(dim, self.group * self.num_points * 2)
        self.attention_weights = nn.Linear(dim, self.group * self.num_points)
        self.value_proj = nn.Linear(dim, dim)
        self.output_proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, H, W, _ = x.shape
        value = self.value_proj(x)
        f = self.offset_dwconv(x)
        f = self.offset_act(self.offset_norm(f))
        offset = self.sampling_offsets(f)
        weights = self.attention_weights(f).view(B, H, W, self.group, self.num_points)
        weights = weights.softmax(-1).view(B, H, W, -1)
        k, pad = self.kernel_size, self.kernel_size // 2
        out = dcnv3(value, offset, weights, k, k, 1, 1, pad, pad, 1, 1, self.group,
                    self.group_channels, self.offset_scale)
        return self.output_proj(out)
