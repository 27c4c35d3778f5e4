# Table VI D: A with the ConvNeXt block (one residual, norm after the mixer).
_base_ = ['../u_dcnv3_small_in1k.py']

model = dict(backbone=dict(block_type='convnext'))

# The single (C,) layer scale of the ConvNeXt-style block is not decayed (1-D, as in the authors' code).
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'gamma': dict(decay_mult=0.0)}))
