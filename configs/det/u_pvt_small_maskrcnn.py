# U-PVT-small Mask R-CNN 1x on COCO (Table V; the authors'
# mask_rcnn_unified_pvt_small_1x). The backbone starts from the raw training weights
# of the classification checkpoint `checkpoints/u_pvt_small_in1k.pth` (ours, or the authors'
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
        stm='pvt',
        arch='small',
        pos_embed_in_residual=False,  # position table into block 0's mixer input only
        drop_path_rate=0.2,
        init_cfg=dict(
            type='PretrainedClassifier', checkpoint='checkpoints/u_pvt_small_in1k.pth',
            weights='raw')),
    neck=dict(in_channels=[64, 128, 320, 512]))
