# Table II, original stage design for DW-Conv: ConvNeXt's 4x4 stride-4 stem and LN + 2x2 stride-2
# transitions; everything else unified.
_base_ = ['../u_dwconv_tiny_in1k.py']

model = dict(backbone=dict(downsample='convnext'))
