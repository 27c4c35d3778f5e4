"""Small building blocks shared by the backbone and every block."""
import torch.nn as nn
import torch.nn.functional as F


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channel dim of a channels-first tensor ``(B, C, H, W)``.

    Same parameters (``weight``, ``bias``) and maths as ``nn.LayerNorm(C)`` applied at every pixel.
    """

    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


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
