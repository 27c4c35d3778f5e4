# Mask R-CNN (slim heads) with a micro unified backbone on digit scenes, for a CPU: the
# detection counterpart of the classification digits demo (make demo-det).
_base_ = [
    './mask_rcnn_unified_fpn_slim.py', './digit_scenes_instance.py', './schedule_digits.py',
    './default_runtime.py'
]

model = dict(
    # The classification digits models are trained at 32x32 (img_size=32): U-PVT's position
    # tables then have that grid (8/4/2/1) and are resized to the 128x128 scenes at run time.
    backbone=dict(img_size=32),
    # digits are 20-52 px: smallest anchors 24 px at stride 4
    rpn_head=dict(anchor_generator=dict(scales=[6])),
    roi_head=dict(bbox_head=dict(num_classes=10), mask_head=dict(num_classes=10)))

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=25),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=100000, save_last=True),
    visualization=dict(type='DetVisualizationHook', draw=False))
log_processor = dict(type='LogProcessor', window_size=25, by_epoch=False)
