# Table VI E: the ConvNeXt architecture in the unified stem/transitions: ConvNeXt block, no per-stage
# norms, plain global pooling + LayerNorm + linear head (no extra transform). Not in the authors' code:
# this composition (D's block, C's norms, ConvNeXt's head) is our reading of the paper.
_base_ = ['../u_dwconv_small_in1k.py']

model = dict(
    backbone=dict(stm_cfg=dict(projections=False), block_type='convnext', norm_placement='none'),
    neck=dict(extra_transform=False, pooled_norm=True),
    head=dict(in_channels=768))

# The single (C,) layer scale of the ConvNeXt-style block is not decayed (1-D, as in the authors' code).
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'gamma': dict(decay_mult=0.0)}))
