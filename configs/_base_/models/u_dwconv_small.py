# U-DWConv (unified ConvNeXt)-small for ImageNet-1k: the authors' unified_convnext_small.
_base_ = ['./unified_classifier.py']

model = dict(
    backbone=dict(stm='dwconv', arch='small', drop_path_rate=0.4),
    neck=dict(in_channels=768),
    head=dict(in_channels=1152))
