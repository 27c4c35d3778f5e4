# U-HaloNet-tiny for ImageNet-1k: the authors' unified_halo_tiny.
_base_ = ['./unified_classifier.py']

model = dict(
    backbone=dict(stm='halo', arch='tiny', drop_path_rate=0.2),
    neck=dict(in_channels=768),
    head=dict(in_channels=1152))
