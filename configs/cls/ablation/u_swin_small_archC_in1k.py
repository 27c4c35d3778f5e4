# Table VI C: B without the per-stage norms.
_base_ = ['../u_swin_small_in1k.py']

model = dict(backbone=dict(norm_placement='none'), neck=dict(pooled_norm=True))
