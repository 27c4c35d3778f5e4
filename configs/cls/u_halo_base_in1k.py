# U-HaloNet-base, ImageNet-1k: the authors' attention-STM recipe (8 GPUs x 128, lr 1e-3, 300 ep).
_base_ = [
    '../_base_/models/u_halo_base.py',
    '../_base_/datasets/imagenet_bs128_unified.py',
    '../_base_/schedules/imagenet_bs1024_adamw_unified_attn.py',
    '../_base_/default_runtime.py',
]

# The authors' Halo layer scales were (1,1,1,C) tensors, so they received weight decay.
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'gamma': dict(decay_mult=1.0)}))
