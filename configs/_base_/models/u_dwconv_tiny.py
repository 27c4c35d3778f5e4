# U-DWConv (unified ConvNeXt)-tiny for ImageNet-1k: the authors' unified_convnext_tiny.
_base_ = ['./unified_classifier.py']

model = dict(
    backbone=dict(stm='dwconv', arch='tiny', drop_path_rate=0.1),
    neck=dict(in_channels=768),
    head=dict(in_channels=1152))
