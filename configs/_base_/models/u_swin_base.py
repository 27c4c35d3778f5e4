# U-Swin-base for ImageNet-1k: the authors' unified_swin_base.
_base_ = ['./unified_classifier.py']

model = dict(
    backbone=dict(stm='swin', arch='base', drop_path_rate=0.5),
    neck=dict(in_channels=1024),
    head=dict(in_channels=1536))
