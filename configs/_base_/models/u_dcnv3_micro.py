# U-InternImage (DCNv3)-micro for ImageNet-1k: the authors' unified_dcn_v3_micro.
_base_ = ['./unified_classifier.py']

model = dict(
    backbone=dict(stm='dcnv3', arch='micro', drop_path_rate=0.0),
    neck=dict(in_channels=256),
    head=dict(in_channels=384))
