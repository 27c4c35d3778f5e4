# Mask R-CNN with slim heads for CPU runs (demos, tests): 64-channel FPN/RPN/RoI features,
# 128-wide box FCs, 2 mask convs, fewer sampled anchors/RoIs and proposals. Same structure
# as the full model (mask_rcnn_unified_fpn.py), about 10x cheaper heads.
_base_ = ['./mask_rcnn_unified_fpn.py']

model = dict(
    backbone=dict(arch='micro', drop_path_rate=0.1),
    neck=dict(in_channels=[32, 64, 128, 256], out_channels=64),
    rpn_head=dict(in_channels=64, feat_channels=64),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=64),
        bbox_head=dict(in_channels=64, fc_out_channels=128),
        mask_roi_extractor=dict(out_channels=64),
        mask_head=dict(num_convs=2, in_channels=64, conv_out_channels=64)),
    train_cfg=dict(
        rpn=dict(sampler=dict(num=128)),
        rpn_proposal=dict(nms_pre=600, max_per_img=300),
        rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(rpn=dict(nms_pre=300, max_per_img=100), rcnn=dict(max_per_img=50)))
