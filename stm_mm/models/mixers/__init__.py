from .base import TokenMixer
from .spec import (ARCH_ZOO, MixerSpec, mixer_spec, mixer_specs, register_mixer,
                   unregister_mixer)
# registration order is the paper's order of the mixers in tables and figures
from .halo import HaloAttention  # noqa: I001
from .pvt import SpatialReductionAttention
from .swin import ShiftedWindowAttention
from .dwconv import DepthwiseConvMixer
from .dcnv3 import DCNv3Mixer

__all__ = [
    'TokenMixer', 'MixerSpec', 'ARCH_ZOO', 'mixer_spec', 'mixer_specs', 'register_mixer',
    'unregister_mixer', 'HaloAttention', 'SpatialReductionAttention', 'ShiftedWindowAttention',
    'DepthwiseConvMixer', 'DCNv3Mixer'
]
