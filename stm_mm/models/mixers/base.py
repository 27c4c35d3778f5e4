"""The contract every spatial token mixer follows."""
import torch.nn as nn


class TokenMixer(nn.Module):
    """Base class of the spatial token mixers.

    A mixer maps a layer-normalised channels-last feature map ``(B, H, W, C)`` to a map of the same
    shape, for any ``H`` and ``W`` (window mixers pad internally and crop back). It is built as
    ``Mixer(dim, num_heads, stage_index, block_index, **options)``: ``num_heads`` is the number of
    attention heads or groups of the stage (ignored by mixers without heads), ``stage_index`` and
    ``block_index`` locate it in the network (Swin shifts odd blocks, PVT picks its per-stage
    reduction ratio).

    ``block_norm_eps`` is the epsilon of the two LayerNorms of the block hosting the mixer; the
    authors' value differs per mixer (1e-5 for Halo, PVT and DCNv3; 1e-6 for Swin and DW-Conv).
    """
    block_norm_eps = 1e-5

    def init_weights(self):
        """Initialise tensors that are not ``nn.Linear``/``nn.Conv2d`` weights (those are set by
        the backbone's global truncated-normal pass)."""
