# U-PVT-micro trained from scratch on the embedded digits (make demo-cls STM=pvt).
_base_ = [
    '../../_base_/models/u_pvt_micro.py',
    '../../_base_/datasets/digits_32px.py',
    '../../_base_/schedules/digits_adamw.py',
    '../../_base_/default_runtime.py',
]

# img_size sizes U-PVT's position embeddings for the 32x32 input (a no-op for the others).
model = dict(backbone=dict(img_size=32), head=dict(num_classes=10), train_cfg=None)
default_hooks = dict(logger=dict(interval=10),
                     checkpoint=dict(interval=5, max_keep_ckpts=1, save_best=None))
