# U-DWConv-micro trained from scratch on the embedded digits (make demo-cls STM=dwconv).
_base_ = [
    '../../_base_/models/u_dwconv_micro.py',
    '../../_base_/datasets/digits_32px.py',
    '../../_base_/schedules/digits_adamw.py',
    '../../_base_/default_runtime.py',
]

# 10 classes, no mixup/cutmix; img_size matters only for U-PVT's position embeddings.
model = dict(backbone=dict(img_size=32), head=dict(num_classes=10), train_cfg=None)
# the authors' weight-decay groups (their layer scales were 4-D tensors: decayed)
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'gamma': dict(decay_mult=1.0)}))
default_hooks = dict(logger=dict(interval=10),
                     checkpoint=dict(interval=5, max_keep_ckpts=1, save_best=None))
