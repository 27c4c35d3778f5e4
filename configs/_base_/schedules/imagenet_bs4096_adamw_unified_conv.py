# The authors' ImageNet-1k recipe for the convolutional STMs (DW-Conv, DCNv3): Table III +
# classification/shell/1k_pretrain/cnn.sh. 8 GPUs x 512 images = batch 4096, lr 4e-3
# (= 4096 / 1024 x 1e-3). Everything not stated here is as in the attention recipe.
_base_ = ['./imagenet_bs1024_adamw_unified_attn.py']

optim_wrapper = dict(optimizer=dict(lr=4e-3))

# Warm-up from 0 in the authors' code. MMEngine's LinearLR is chainable (each step multiplies
# the previous lr), so a start factor of exactly 0 would stay 0: use a negligible one
# (4e-3 x 1e-6 = 4e-9 at the first iteration). Cosine floor 1e-6.
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, end_factor=1.0, by_epoch=True, begin=0, end=20,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=280, eta_min=1e-6, by_epoch=True, begin=20, end=300,
         convert_to_iter_based=True),
]

auto_scale_lr = dict(base_batch_size=4096)
