from .base import TokenMixer
from .dcnv3 import DCNv3Mixer
from .dwconv import DepthwiseConvMixer
from .halo import HaloAttention
from .pvt import SpatialReductionAttention
from .swin import ShiftedWindowAttention

__all__ = [
    'TokenMixer', 'HaloAttention', 'SpatialReductionAttention', 'ShiftedWindowAttention',
    'DepthwiseConvMixer', 'DCNv3Mixer'
]
