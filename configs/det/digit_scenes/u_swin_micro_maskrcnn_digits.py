# Mask R-CNN (slim heads) with a micro U-swin backbone on digit scenes (make demo-det STM=swin).
# Backbone from the classification digits demo (make demo-cls STM=swin); tools/demo/
# det_digit_scenes.sh passes the cls2det output instead. Both hold raw weights (no EMA here).
_base_ = ['../../_base_/det/digit_scenes_maskrcnn.py']

model = dict(
    backbone=dict(
        stm='swin',
        arch='micro',
        stm_cfg=dict(shift_single_window=True),  # odd blocks shift in every stage
        drop_path_rate=0.1,
        init_cfg=dict(
            type='PretrainedClassifier', checkpoint='work_dirs/demo/cls_swin_micro.pth',
            weights='raw')),
    neck=dict(in_channels=[32, 64, 128, 256]))
