# U-InternImage (DCNv3)-base for ImageNet-1k: the authors' unified_dcn_v3_base.
_base_ = ['./unified_classifier.py']

model = dict(
    backbone=dict(stm='dcnv3', arch='base', drop_path_rate=0.5),
    neck=dict(in_channels=896),
    head=dict(in_channels=1344))
