# The unified architecture as an mmpretrain classifier (1000 classes), shared by the 20 model
# configs u_<stm>_<scale>.py, which set the mixer, the scale and the widths of neck and head.
custom_imports = dict(imports=['stm_mm'], allow_failed_imports=False)

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='UnifiedBackbone',
        layer_scale_init_value=1e-6,
        out_indices=(3, ),
        norm_placement='stage'),
    # the authors' "extra transform": 1x1 conv to 1.5 x C3 + BN + GELU, then global pooling
    neck=dict(type='ExtraTransformNeck', ratio=1.5),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        init_cfg=dict(type='TruncNormal', layer='Linear', std=0.02, bias=0.0)),
    train_cfg=dict(augments=[dict(type='Mixup', alpha=0.8), dict(type='CutMix', alpha=1.0)]),
)
