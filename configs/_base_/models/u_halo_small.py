# U-HaloNet-small for ImageNet-1k: the authors' unified_halo_small.
_base_ = ['./unified_classifier.py']

model = dict(
    backbone=dict(stm='halo', arch='small', drop_path_rate=0.3),
    neck=dict(in_channels=768),
    head=dict(in_channels=1152))
