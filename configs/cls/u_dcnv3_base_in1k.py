# U-InternImage-base, ImageNet-1k: the authors' conv-STM recipe (8 GPUs x 512, lr 4e-3, 300 ep).
_base_ = [
    '../_base_/models/u_dcnv3_base.py',
    '../_base_/datasets/imagenet_bs512_unified.py',
    '../_base_/schedules/imagenet_bs4096_adamw_unified_conv.py',
    '../_base_/default_runtime.py',
]
