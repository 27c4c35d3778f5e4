# U-PVT-small for ImageNet-1k: the authors' unified_pvt_small.
_base_ = ['./unified_classifier.py']

model = dict(
    backbone=dict(stm='pvt', arch='small', drop_path_rate=0.3),
    neck=dict(in_channels=512),
    head=dict(in_channels=768))
