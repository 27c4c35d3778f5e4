# U-Swin-base for ImageNet-1k: the authors' unified_swin_base.
custom_imports = dict(imports=['stm_mm'], allow_failed_imports=False)

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='UnifiedBackbone',
        stm='swin',
        arch='base',
        drop_path_rate=0.5,
        layer_scale_init_value=1e-6,
        out_indices=(3, ),
        norm_placement='stage'),
    neck=dict(type='ExtraTransformNeck', in_channels=1024, ratio=1.5),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=1536,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        init_cfg=dict(type='TruncNormal', layer='Linear', std=0.02, bias=0.0)),
    train_cfg=dict(augments=[dict(type='Mixup', alpha=0.8), dict(type='CutMix', alpha=1.0)]),
)
