# The authors' ImageNet-1k recipe for the attention STMs (Halo, PVT/SR, Swin/SW): Table III +
# classification/shell/1k_pretrain/transformer.sh. 8 GPUs x 128 images = batch 1024, lr 1e-3.
#
# lr = total batch / 1024 x 1e-3: `--auto-scale-lr` rescales the lr (and with it the warm-up
# start, which is relative) when the real total batch differs from 1024. The cosine floor
# (eta_min) stays absolute.
optim_wrapper = dict(
    type='OptimWrapper',  # tools/train.py --amp switches to AmpOptimWrapper (authors: AMP on)
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05),
    clip_grad=dict(max_norm=5.0, norm_type=2),  # global-norm clipping (after AMP unscaling)
    # Weight decay exactly where the authors' timm optimizer put it: none for every
    # 1-dimensional parameter (norms, layer scales of shape (C,), the neck's BN), every name
    # ending in `.bias` and every `relative_position_bias_table`; everything else decays
    # (weights, PVT position embeddings, Halo relative tables). MMEngine's
    # DefaultOptimWrapperConstructor: flat_decay_mult hits ndim == 1, bias_decay_mult hits
    # parameters named `bias`, and a custom key (longest substring match) overrides both.
    # Halo and DW-Conv configs add custom_keys 'gamma' (decay_mult=1.0): the authors' layer
    # scales were (1,1,1,C) / (1,C,1,1) tensors there and so were decayed; ours are (C,).
    paramwise_cfg=dict(
        flat_decay_mult=0.0,
        bias_decay_mult=0.0,
        custom_keys={'relative_position_bias_table': dict(decay_mult=0.0)}),
)

# Per-iteration schedule: linear warm-up over 20 epochs from 1e-6 (start_factor 1e-6 / 1e-3),
# then cosine to 1e-5 over the remaining 280 epochs.
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, end_factor=1.0, by_epoch=True, begin=0, end=20,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=280, eta_min=1e-5, by_epoch=True, begin=20, end=300,
         convert_to_iter_based=True),
]

train_cfg = dict(by_epoch=True, max_epochs=300, val_interval=1)
val_cfg = dict()
test_cfg = dict()

auto_scale_lr = dict(base_batch_size=1024)

# EMA of all weights and buffers (timm ModelEma, decay 0.9999 per step). MMEngine's momentum is
# 1 - decay. Like the authors, every validation evaluates both the raw weights
# (`accuracy/top1`, `accuracy/top5`) and the EMA (`accuracy_ema/top1`, `accuracy_ema/top5`);
# default_runtime.py keeps a best checkpoint of each. Checkpoints hold the EMA weights in
# `state_dict` and the raw ones in `ema_state_dict` (MMEngine's EMAHook format). A test run
# evaluates `test_weights`: 'both', 'raw' or 'ema' (--cfg-options custom_hooks.0.test_weights=raw).
custom_hooks = [
    dict(type='DualEvalEMAHook', momentum=1e-4, update_buffers=True, test_weights='both',
         priority='ABOVE_NORMAL'),
]

# The authors convert the neck's BatchNorm to SyncBatchNorm when training distributed (MMEngine
# does so for `sync_bn` when the launcher is not 'none'). torch's SyncBatchNorm needs GPUs:
# for gloo/CPU runs pass `--cfg-options sync_bn=None`.
sync_bn = 'torch'
