# Table VI B: A with a LayerNorm after global average pooling (stage norms kept).
_base_ = ['../u_swin_small_in1k.py']

model = dict(neck=dict(pooled_norm=True))
