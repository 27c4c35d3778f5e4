# Mask R-CNN (slim heads) with a micro U-dwconv backbone on digit scenes (make demo-det STM=dwconv).
# Backbone from the classification digits demo (make demo-cls STM=dwconv); tools/demo/
# det_digit_scenes.sh passes the cls2det output instead. Both hold raw weights (no EMA here).
_base_ = ['../../_base_/det/digit_scenes_maskrcnn.py']

model = dict(
    backbone=dict(
        stm='dwconv',
        arch='micro',
        drop_path_rate=0.1,
        init_cfg=dict(
            type='PretrainedClassifier', checkpoint='work_dirs/demo/cls_dwconv_micro.pth',
            weights='raw')),
    neck=dict(in_channels=[32, 64, 128, 256]))
