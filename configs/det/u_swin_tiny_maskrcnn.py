# U-Swin-tiny Mask R-CNN 1x on COCO (Table V; the authors'
# mask_rcnn_unified_swin_tiny_1x). The backbone starts from the raw training weights
# of the classification checkpoint `checkpoints/u_swin_tiny_in1k.pth` (ours, or the authors'
# converted with tools/model_converters/official_to_stm_mm.py), as the authors' detector;
# init_cfg.weights='ema' takes its EMA weights instead. Override with --cfg-options
# model.backbone.init_cfg.checkpoint=PATH model.backbone.init_cfg.weights=ema
# (see docs/detection.md).
_base_ = [
    '../_base_/det/mask_rcnn_unified_fpn.py', '../_base_/det/coco_instance.py',
    '../_base_/det/schedule_adamw_1x.py', '../_base_/det/default_runtime.py'
]

model = dict(
    backbone=dict(
        stm='swin',
        arch='tiny',
        stm_cfg=dict(shift_single_window=True),  # odd blocks shift in every stage
        drop_path_rate=0.2,
        init_cfg=dict(
            type='PretrainedClassifier', checkpoint='checkpoints/u_swin_tiny_in1k.pth',
            weights='raw')),
    neck=dict(in_channels=[96, 192, 384, 768]))
