"""The unified pre-norm block and the stage that stacks it."""
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmcv.cnn.bricks import DropPath

from .utils import Mlp


class _ResidualBlock(nn.Module):
    """Shared constructor contract of the block designs.

    ``Block(dim, mixer, mlp_ratio, drop_path, layer_scale_init_value, norm_eps)``; forward
    ``(x, mixer_pos=None)`` on ``(B, H, W, C)``, where ``mixer_pos`` (broadcastable to x) is added
    to the mixer's input only (U-PVT's detection-style position embedding).
    """

    def __init__(self, drop_path, layer_scale_init_value):
        super().__init__()
        self.layer_scale_init_value = layer_scale_init_value
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def residual(self, x, gamma, y):
        """``x + DropPath(gamma * y)`` as one ``addcmul``: while training, a path dropped with
        probability p multiplies ``gamma`` by a per-image 0 or 1 / (1 - p), drawn as mmcv's
        ``DropPath`` draws it (same random numbers), instead of three more passes over ``y``."""
        if self.training and not isinstance(self.drop_path, nn.Identity):
            keep = 1 - self.drop_path.drop_prob
            shape = (x.shape[0], ) + (1, ) * (x.dim() - 1)
            dtype = torch.promote_types(gamma.dtype, y.dtype)
            kept = (keep + torch.rand(shape, dtype=dtype, device=y.device)).floor_()
            return torch.addcmul(x, y, gamma * kept.div_(keep))
        return torch.addcmul(x, gamma, y)

    def reset_block_parameters(self):
        """Layer scales back to their initial value (after the backbone's global init)."""
        for name, param in self.named_parameters(recurse=False):
            if name.startswith('gamma'):
                nn.init.constant_(param, self.layer_scale_init_value)


class UnifiedBlock(_ResidualBlock):
    """Pre-norm transformer block around any spatial token mixer (the paper's unified block).

    ``x = x + DropPath(gamma1 * mixer(norm1(x)))``, then
    ``x = x + DropPath(gamma2 * mlp(norm2(x)))``; the same drop-path rate serves both branches.

    Args:
        dim: channels C. mixer: the token mixer module (``(B, H, W, C)`` in and out).
        mlp_ratio: hidden width of the MLP is ``int(C * mlp_ratio)``.
        drop_path: stochastic-depth rate (0 builds no module).
        layer_scale_init_value: initial value of the per-channel scales ``gamma1``/``gamma2``.
        norm_eps: epsilon of both LayerNorms (the mixer's ``block_norm_eps``).
    Shapes: ``(B, H, W, C)`` -> ``(B, H, W, C)``.
    """

    def __init__(self, dim, mixer, mlp_ratio=4.0, drop_path=0.0, layer_scale_init_value=1e-6,
                 norm_eps=1e-5):
        super().__init__(drop_path, layer_scale_init_value)
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.mixer = mixer
        self.gamma1 = nn.Parameter(torch.full((dim, ), float(layer_scale_init_value)))
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, mlp_ratio)
        self.gamma2 = nn.Parameter(torch.full((dim, ), float(layer_scale_init_value)))

    # CPU inference runs the MLP branch on chunks of tokens whose 4C-wide hidden activations
    # take about this many elements (8 MiB in float32), so they stay in cache (on a GPU the
    # extra kernel launches would cost more than they save)
    inference_chunk_elements = 1 << 21

    def forward(self, x, mixer_pos=None):
        mixer_in = x if mixer_pos is None else x + mixer_pos
        x = self.residual(x, self.gamma1, self.mixer(self.norm1(mixer_in)))
        if x.device.type == 'cpu' and self._records_nothing():
            return self._mlp_branch_in_chunks(x)
        return self.residual(x, self.gamma2, self.mlp(self.norm2(x)))

    def _records_nothing(self):
        """No autograd graph, no dropped paths, no compiler or ONNX tracing: chunking changes
        nothing (a traced chunk count would be frozen at the traced size)."""
        return (not torch.is_grad_enabled() and not torch.compiler.is_compiling() and
                not torch.jit.is_tracing() and
                (not self.training or isinstance(self.drop_path, nn.Identity)))

    def _mlp_branch_in_chunks(self, x):
        """``x + gamma2 * mlp(norm2(x))`` a few thousand tokens at a time (same result)."""
        flat = x.reshape(-1, x.shape[-1])
        chunk = max(1, self.inference_chunk_elements // self.mlp.fc1.out_features)
        out = torch.empty_like(flat)
        for tokens, out_tokens in zip(flat.split(chunk), out.split(chunk)):
            torch.addcmul(tokens, self.gamma2, self.mlp(self.norm2(tokens)), out=out_tokens)
        return out.view(x.shape)


class ConvNeXtStyleBlock(_ResidualBlock):
    """The ConvNeXt block design with any mixer (Table II right / Table VI D).

    ``x = x + DropPath(gamma * mlp(norm(mixer(x))))``: one residual, the mixer on the raw block
    input (no pre-norm), one LayerNorm before the MLP. With ``DepthwiseConvMixer(projections=
    False)`` this is ConvNeXt's block; with DCNv3 the authors' ``DCNv3SingleResBlock``.
    Shapes: ``(B, H, W, C)`` -> ``(B, H, W, C)``.
    """

    def __init__(self, dim, mixer, mlp_ratio=4.0, drop_path=0.0, layer_scale_init_value=1e-6,
                 norm_eps=1e-5):
        super().__init__(drop_path, layer_scale_init_value)
        self.mixer = mixer
        self.norm = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, mlp_ratio)
        self.gamma = nn.Parameter(torch.full((dim, ), float(layer_scale_init_value)))

    def forward(self, x, mixer_pos=None):
        mixer_in = x if mixer_pos is None else x + mixer_pos
        return self.residual(x, self.gamma, self.mlp(self.norm(self.mixer(mixer_in))))


class BatchNormLast(nn.BatchNorm2d):
    """BatchNorm over the channels of a channels-last map ``(B, H, W, C)``."""

    def forward(self, x):
        return super().forward(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class BottleneckBlock(_ResidualBlock):
    """HaloNet's ResNet-style block: the mixer in place of a bottleneck's 3x3 convolution.

    ``x = ReLU(x + DropPath(BN(proj_out(ReLU(BN(mixer(ReLU(BN(proj_in(x))))))))))`` with 1x1
    projections at the block width, BatchNorm + ReLU as in ResNet and the last BatchNorm's
    scale initialised to zero (no layer scale, no MLP: ``mlp_ratio`` is unused).
    Shapes: ``(B, H, W, C)`` -> ``(B, H, W, C)``.
    """

    def __init__(self, dim, mixer, mlp_ratio=4.0, drop_path=0.0, layer_scale_init_value=1e-6,
                 norm_eps=1e-5):
        super().__init__(drop_path, layer_scale_init_value)
        self.proj_in = nn.Linear(dim, dim, bias=False)
        self.bn1 = BatchNormLast(dim)
        self.mixer = mixer
        self.bn2 = BatchNormLast(dim)
        self.proj_out = nn.Linear(dim, dim, bias=False)
        self.bn3 = BatchNormLast(dim)
        self.act = nn.ReLU(inplace=True)

    def reset_block_parameters(self):
        nn.init.zeros_(self.bn3.weight)

    def forward(self, x, mixer_pos=None):
        mixer_in = x if mixer_pos is None else x + mixer_pos
        y = self.act(self.bn1(self.proj_in(mixer_in)))
        y = self.act(self.bn2(self.mixer(y)))
        y = self.bn3(self.proj_out(y))
        return self.act(x + self.drop_path(y))


BLOCK_TYPES = dict(unified=UnifiedBlock, convnext=ConvNeXtStyleBlock, bottleneck=BottleneckBlock)


class AbsolutePositionEmbedding(nn.Module):
    """Learned ``(1, C, H0, W0)`` embedding, resized (bilinear, align_corners=True) to any map.

    Returns it channels-last, ``(1, H, W, C)``, for a map of size ``(H, W)``. While exporting to
    ONNX it always resizes (an identity at the table's own size), so the graph fits every size.
    """

    def __init__(self, dim, grid_size):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1, dim, grid_size, grid_size))
        nn.init.trunc_normal_(self.weight, std=0.02)

    def forward(self, H, W):
        pos = self.weight
        if torch.onnx.is_in_onnx_export() or pos.shape[-2:] != (H, W):
            pos = F.interpolate(pos, size=(H, W), mode='bilinear', align_corners=True)
        return pos.permute(0, 2, 3, 1)


class Stage(nn.Module):
    """A stack of blocks at one resolution: ``(B, C, H, W)`` -> ``(B, C, H, W)``.

    The blocks run on channels-last maps ``(B, H, W, C)``; the stage takes and returns
    channels-first views of them (no copy), so hooks on a stage (Grad-CAM) see ``(B, C, H, W)``.

    Args:
        blocks: the blocks. pos_embed: optional :class:`AbsolutePositionEmbedding` (U-PVT).
        pos_embed_in_residual: True adds it to the stage input, so the residual stream carries it
            (the authors' classification model); False adds it to the first block's mixer input
            only (their detection backbone).
        with_cp: gradient checkpointing per block while training.
    """

    def __init__(self, blocks, pos_embed=None, pos_embed_in_residual=True, with_cp=False):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.pos_embed = pos_embed
        self.pos_embed_in_residual = pos_embed_in_residual
        self.with_cp = with_cp

    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        mixer_pos = None
        if self.pos_embed is not None:
            pos = self.pos_embed(*x.shape[1:3])
            if self.pos_embed_in_residual:
                x = x + pos
            else:
                mixer_pos = pos
        for index, block in enumerate(self.blocks):
            extra = (mixer_pos, ) if index == 0 and mixer_pos is not None else ()
            if self.with_cp and x.requires_grad:
                x = cp.checkpoint(block, x, *extra, use_reentrant=False)
            else:
                x = block(x, *extra)
        return x.permute(0, 3, 1, 2)
