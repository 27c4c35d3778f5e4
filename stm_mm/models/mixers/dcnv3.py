"""DCNv3 (InternImage's deformable convolution) as the authors built it for U-InternImage."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from ...ops import dcnv3_softmax
from ...ops.dcnv3 import IMPLS
from ...ops.impl_switch import requested_impl
from ..arch_zoo import W32, arch
from ..utils import ChannelsLastDepthwiseConv2d
from .base import TokenMixer
from .spec import MixerSpec, register_mixer

SPEC = MixerSpec(
    name='dcnv3', label='U-InternImage', signature='mixer.sampling_offsets.', flops='total',
    keys=(('gamma1', 'gamma1'), ('gamma2', 'gamma2'),
          ('attn.dw_conv.0.', 'mixer.offset_dwconv.'),
          ('attn.dw_conv.1.norm.', 'mixer.offset_norm.')),
    presets={
        'micro': arch((2, 2, 9, 2), W32, (2, 4, 8, 16), 0.0),
        'tiny': arch((4, 4, 18, 4), (64, 128, 256, 512), (4, 8, 16, 32), 0.1),
        'small': arch((4, 4, 21, 4), (80, 160, 320, 640), (5, 10, 20, 40), 0.3),
        'base': arch((4, 4, 21, 4), (112, 224, 448, 896), (7, 14, 28, 56), 0.5),
    },
    impls=('compiled', 'triton', 'pytorch'))


@register_mixer(SPEC)
class DCNv3Mixer(TokenMixer):
    """3x3 deformable convolution with learned offsets and softmax-normalised modulation.

    Offsets and modulation come from ``GELU(LN(dwconv3x3(x)))``; values from ``value_proj(x)``.
    Each of the ``G = num_heads`` groups samples its channels bilinearly at the 9 points of a 3x3
    grid moved by the offsets (zero outside the map) and sums them with softmax(P) weights.
    The offset and modulation projections (the authors' ``sampling_offsets`` and
    ``attention_weights``, whose parameters keep their names) run as one GEMM on their
    concatenated weights.

    Args:
        dim: channels C. num_heads: groups G. kernel_size: K (3 -> P = 9 points).
        offset_scale: multiplies the offsets (1.0). dw_kernel_size: offset branch's kernel (3).
        impl: DCNv3 implementation, see :func:`stm_mm.ops.dcnv3_softmax` (default:
            ``$STM_MM_DCNV3_IMPL``, else ``'auto'``).
    Shapes: ``(B, H, W, C)`` -> ``(B, H, W, C)``.
    """

    def __init__(self, dim, num_heads, stage_index=0, block_index=0, kernel_size=3,
                 offset_scale=1.0, dw_kernel_size=3, impl=None):
        super().__init__()
        self.group = num_heads
        self.group_channels = dim // num_heads
        self.kernel_size = kernel_size
        self.offset_scale = offset_scale
        self.num_points = kernel_size * kernel_size
        self.impl = impl if impl is None else requested_impl('dcnv3', impl, IMPLS)
        self.offset_dwconv = ChannelsLastDepthwiseConv2d(dim, dw_kernel_size)
        self.offset_norm = nn.LayerNorm(dim, eps=1e-5)
        self.offset_act = nn.GELU()
        self.sampling_offsets = nn.Linear(dim, self.group * self.num_points * 2)
        self.attention_weights = nn.Linear(dim, self.group * self.num_points)
        self.value_proj = nn.Linear(dim, dim)
        self.output_proj = nn.Linear(dim, dim)

    def forward(self, x):
        value = self.value_proj(x)
        f = self.offset_act(self.offset_norm(self.offset_dwconv(x)))
        offset_proj, weight_proj = self.sampling_offsets, self.attention_weights
        projected = F.linear(f, torch.cat([offset_proj.weight, weight_proj.weight]),
                             torch.cat([offset_proj.bias, weight_proj.bias]))
        offset, logits = projected.split([offset_proj.out_features, weight_proj.out_features],
                                         -1)
        k, pad = self.kernel_size, self.kernel_size // 2
        out = dcnv3_softmax(value, offset, logits, k, k, 1, 1, pad, pad, 1, 1, self.group,
                            self.group_channels, self.offset_scale, impl=self.impl)
        return self.output_proj(out)
