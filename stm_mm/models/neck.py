"""The classification model's "extra transform" before global pooling."""
import torch.nn as nn
from mmengine.model import BaseModule

from ..registry import MODELS


@MODELS.register_module()
class ExtraTransformNeck(BaseModule):
    """1x1 conv (no bias) + BatchNorm + GELU at every position, then global average pooling.

    The authors' head widens the last stage ``C3 -> int(ratio * C3)`` before pooling.
    ``pooled_norm=True`` adds a LayerNorm (eps 1e-6) on the pooled vector (the paper's
    architecture B: "norm after global pooling"); ``extra_transform=False`` drops the conv, BN
    and GELU (plain pooling, as in Swin or ConvNeXt).

    Shapes: tuple of ``(B, C3, H, W)`` -> tuple of ``(B, int(ratio * C3))`` (``(B, C3)``
    without the extra transform).
    """

    def __init__(self, in_channels, ratio=1.5, pooled_norm=False, extra_transform=True,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.out_channels = int(ratio * in_channels) if extra_transform else in_channels
        if extra_transform:
            self.conv = nn.Conv2d(in_channels, self.out_channels, 1, bias=False)
            self.bn = nn.BatchNorm2d(self.out_channels)
            self.act = nn.GELU()
            nn.init.trunc_normal_(self.conv.weight, std=0.02, a=-2, b=2)
        self.extra_transform = extra_transform
        self.pooled_norm = nn.LayerNorm(self.out_channels, eps=1e-6) if pooled_norm else None

    def forward(self, inputs):
        if not isinstance(inputs, (tuple, list)):
            inputs = (inputs, )
        outs = []
        for x in inputs:
            if self.extra_transform:
                x = self.act(self.bn(self.conv(x)))
            x = x.mean(dim=(2, 3))
            if self.pooled_norm is not None:
                x = self.pooled_norm(x)
            outs.append(x)
        return tuple(outs)
