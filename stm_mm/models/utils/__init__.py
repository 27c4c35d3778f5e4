from .attention import attention, reference_attention, use_reference_attention
from .layers import ChannelsLastDepthwiseConv2d, LayerNorm2d, Mlp
from .windows import (pad_to_multiple, relative_position_index, swin_shift_mask,
                      window_merge, window_partition)

__all__ = [
    'attention', 'reference_attention', 'use_reference_attention', 'ChannelsLastDepthwiseConv2d',
    'LayerNorm2d', 'Mlp',
    'pad_to_multiple', 'relative_position_index', 'swin_shift_mask', 'window_merge',
    'window_partition'
]
