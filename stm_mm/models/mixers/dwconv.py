"""7x7 depth-wise convolution between two point-wise projections (the unified ConvNeXt mixer)."""
import torch.nn as nn

from ..arch_zoo import W32, W96, W128, arch
from ..utils import ChannelsLastDepthwiseConv2d
from .base import TokenMixer
from .spec import CHANNELS_FIRST, CHANNELS_LAST, CONV1X1, MixerSpec, register_mixer

SPEC = MixerSpec(
    name='dwconv', label='U-DWConv', signature='mixer.dwconv.', flops='paper_local',
    keys=(('gamma_1', 'gamma1', CHANNELS_FIRST), ('gamma_2', 'gamma2', CHANNELS_LAST),
          ('dw_norm.', 'norm1.'), ('pw_norm.', 'norm2.'),
          ('dw_input_proj.weight', 'mixer.input_proj.weight', CONV1X1),
          ('dw_input_proj.', 'mixer.input_proj.'), ('dwconv.', 'mixer.dwconv.'),
          ('dw_out_proj.weight', 'mixer.output_proj.weight', CONV1X1),
          ('dw_out_proj.', 'mixer.output_proj.'), ('pwconv1.', 'mlp.fc1.'),
          ('pwconv2.', 'mlp.fc2.')),
    presets={
        'micro': arch((3, 3, 8, 3), W32, None, 0.0),
        'tiny': arch((2, 2, 9, 2), W96, None, 0.1),
        'small': arch((2, 2, 24, 2), W96, None, 0.4),
        'base': arch((2, 2, 24, 2), W128, None, 0.5),
    })


@register_mixer(SPEC)
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
