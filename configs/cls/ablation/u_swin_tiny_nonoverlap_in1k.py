# Table II, original stage design for Swin: the authors' official_swin_tiny (28.30M): Swin's 4x4
# patch embedding and 2x2 patch merging, no per-stage norms, one LayerNorm after the last stage, no
# extra transform.
_base_ = ['../u_swin_tiny_in1k.py']

model = dict(
    backbone=dict(downsample='patch_merging', norm_placement='last'),
    neck=dict(extra_transform=False),
    head=dict(in_channels=768))
