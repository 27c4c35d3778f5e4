# Mask R-CNN (slim heads) with a micro U-dcnv3 backbone on digit scenes (make demo-det STM=dcnv3).
# Backbone from the classification digits demo (make demo-cls STM=dcnv3); tools/demo/
# det_digit_scenes.sh passes the cls2det output instead. Both hold raw weights (no EMA here).
_base_ = ['../../_base_/det/digit_scenes_maskrcnn.py']

model = dict(
    backbone=dict(
        stm='dcnv3',
        arch='micro',
        drop_path_rate=0.1,
        init_cfg=dict(
            type='PretrainedClassifier', checkpoint='work_dirs/demo/cls_dcnv3_micro.pth',
            weights='raw')),
    neck=dict(in_channels=[32, 64, 128, 256]))
