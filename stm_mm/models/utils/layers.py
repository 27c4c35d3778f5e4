"""Small building blocks shared by the backbone and every block."""
import torch.nn as nn
import torch.nn.functional as F

from ...ops.depthwise_conv import depthwise_conv2d_nhwc, use_compiled_backward


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channel dim of a channels-first tensor ``(B, C, H, W)``.

    Same parameters (``weight``, ``bias``) and maths as ``nn.LayerNorm(C)`` applied at every pixel.
    """

    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class ChannelsLastDepthwiseConv2d(nn.Conv2d):
    """Depth-wise ``nn.Conv2d(C, C, k, padding=k // 2, groups=C)`` applied to channels-last maps.

    Same parameters and state-dict keys as the ``nn.Conv2d``. Shapes: ``(B, H, W, C)`` ->
    ``(B, H, W, C)``. In CPU training (float32/64, kernel >= 5) the backward pass runs the
    compiled weight/bias gradient of :mod:`stm_mm.ops.depthwise_conv`; everywhere else, and
    always in the forward pass, it is PyTorch's convolution on the permuted view.
    """

    def __init__(self, dim, kernel_size):
        super().__init__(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)

    def forward(self, x):
        if use_compiled_backward(x, self.weight, self.padding, self.stride, self.dilation):
            return depthwise_conv2d_nhwc(x, self.weight, self.bias, *self.padding)
        return super().forward(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class Mlp(nn.Module):
    """``fc2(GELU(fc1(x)))`` on channels-last tokens ``(..., C)``; hidden width ``int(C * ratio)``."""

    def __init__(self, dim, ratio=4.0):
        super().__init__()
        hidden = int(dim * ratio)
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))
