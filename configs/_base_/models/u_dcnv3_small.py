# U-InternImage (DCNv3)-small for ImageNet-1k: the authors' unified_dcn_v3_small.
_base_ = ['./unified_classifier.py']

model = dict(
    backbone=dict(stm='dcnv3', arch='small', drop_path_rate=0.3),
    neck=dict(in_channels=640),
    head=dict(in_channels=960))
