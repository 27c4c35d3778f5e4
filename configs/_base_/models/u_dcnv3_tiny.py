# U-InternImage (DCNv3)-tiny for ImageNet-1k: the authors' unified_dcn_v3_tiny.
_base_ = ['./unified_classifier.py']

model = dict(
    backbone=dict(stm='dcnv3', arch='tiny', drop_path_rate=0.1),
    neck=dict(in_channels=512),
    head=dict(in_channels=768))
