# Table II, original block design for DW-Conv: ConvNeXt's block (7x7 depth-wise conv -> LN -> MLP,
# one residual, no point-wise projections around the conv).
_base_ = ['../u_dwconv_tiny_in1k.py']

model = dict(backbone=dict(stm_cfg=dict(projections=False), block_type='convnext'))

# Its single (C,) layer scale is not decayed (1-D, as in the authors' ConvNeXtBlock).
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'gamma': dict(decay_mult=0.0)}))
