"""PVT spatial-reduction attention: global attention over a strided, downsampled key map."""
import torch.nn as nn

from ..arch_zoo import arch
from ..utils import attention
from .base import TokenMixer
from .spec import MixerSpec, register_mixer

_WIDTHS = (64, 128, 320, 512)
_SHARED = dict(num_heads=(1, 2, 5, 8), mlp_ratios=(8, 8, 4, 4), abs_pos_embed=True)
SPEC = MixerSpec(
    name='pvt', label='U-PVT', signature='mixer.kv.bias', flops='paper_local',
    keys=(('attn.norm.', 'mixer.sr_norm.'), ),
    presets={
        'micro': arch((2, 2, 3, 2), (32, 64, 160, 256), drop_path_rate=0.0, **_SHARED),
        'tiny': arch((3, 4, 9, 3), _WIDTHS, drop_path_rate=0.1, **_SHARED),
        'small': arch((3, 4, 21, 3), _WIDTHS, drop_path_rate=0.3, **_SHARED),
        'base': arch((3, 8, 45, 3), _WIDTHS, drop_path_rate=0.5,
                     **dict(_SHARED, mlp_ratios=(4, 4, 4, 4))),
    })


@register_mixer(SPEC)
class SpatialReductionAttention(TokenMixer):
    """Multi-head attention whose keys/values come from the map reduced ``R`` times.

    With ``R > 1`` a ``R x R`` stride-``R`` convolution (``sr``) and a LayerNorm (``sr_norm``)
    shrink the map to ``(floor(H/R), floor(W/R))`` before the ``kv`` projection; the outputs of
    ``kv`` are ``[all-head keys | all-head values]``. The learned absolute position embedding of
    U-PVT lives in the backbone's stage (``abs_pos_embed``), not here.

    Args:
        dim: channels C. num_heads: heads. stage_index: picks ``sr_ratios[stage_index]``.
        sr_ratios: reduction ratio per stage (authors: 8, 4, 2, 1).
    Shapes: ``(B, H, W, C)`` -> ``(B, H, W, C)``.
    """

    def __init__(self, dim, num_heads, stage_index=0, block_index=0, sr_ratios=(8, 4, 2, 1)):
        super().__init__()
        self.num_heads = num_heads
        self.sr_ratio = sr_ratios[stage_index]
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        if self.sr_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, kernel_size=self.sr_ratio, stride=self.sr_ratio)
            self.sr_norm = nn.LayerNorm(dim, eps=1e-5)

    def forward(self, x):
        B, H, W, C = x.shape
        n = self.num_heads
        q = self.q(x).view(B, H * W, n, -1).transpose(1, 2)  # (B, n, HW, d)
        if self.sr_ratio > 1:
            x = self.sr(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
            x = self.sr_norm(x)
        k, v = self.kv(x).view(B, -1, 2, n, C // n).permute(2, 0, 3, 1, 4)  # (B, n, N, d) each
        out = attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(B, H, W, C))
