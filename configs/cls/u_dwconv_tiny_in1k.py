# U-DWConv-tiny, ImageNet-1k: the authors' conv-STM recipe (8 GPUs x 512, lr 4e-3, 300 ep).
_base_ = [
    '../_base_/models/u_dwconv_tiny.py',
    '../_base_/datasets/imagenet_bs512_unified.py',
    '../_base_/schedules/imagenet_bs4096_adamw_unified_conv.py',
    '../_base_/default_runtime.py',
]

# The authors' DW-Conv layer scales were 4-D tensors, so they received weight decay.
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'gamma': dict(decay_mult=1.0)}))
