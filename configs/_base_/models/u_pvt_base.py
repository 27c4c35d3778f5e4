# U-PVT-base for ImageNet-1k: the authors' unified_pvt_base.
_base_ = ['./unified_classifier.py']

model = dict(
    backbone=dict(stm='pvt', arch='base', drop_path_rate=0.5),
    neck=dict(in_channels=512),
    head=dict(in_channels=768))
