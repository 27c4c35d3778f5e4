# Mask R-CNN + FPN (mmdet's mask-rcnn_r50_fpn base: RPN, RoI heads, assigners, samplers and test
# settings unchanged, 80 classes) with the ResNet replaced by the unified backbone as the authors'
# detection code builds it:
#   norm_placement='output'  fresh LayerNorms (`out_norms.i`) on the four returned maps only; the
#                            classification stage norms are not on the main path (section 6.3);
#   out_indices=(0,1,2,3)    strides 4/8/16/32 into the FPN;
#   img_size=224             the grid of U-PVT's position tables (resized at run time).
# STM-specific options are set by each config in configs/det/:
#   Swin: stm_cfg=dict(shift_single_window=True)  (odd blocks shift in every stage)
#   PVT:  pos_embed_in_residual=False             (position table added to block 0's mixer input)
_base_ = ['mmdet::_base_/models/mask-rcnn_r50_fpn.py']

custom_imports = dict(imports=['stm_mm'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='UnifiedBackbone',
        stm='halo',
        arch='tiny',
        img_size=224,
        drop_path_rate=0.2,
        layer_scale_init_value=1e-6,
        out_indices=(0, 1, 2, 3),
        norm_placement='output'),
    neck=dict(in_channels=[96, 192, 384, 768], out_channels=256, num_outs=5))
