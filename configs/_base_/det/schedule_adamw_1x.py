# The authors' "1x" schedule (section 6.2): AdamW lr 1e-4, betas (0.9, 0.999), weight decay 0.05,
# FP32, no gradient clipping; 12 epochs, linear warm-up over 1000 iterations from 0.001 * lr,
# lr x0.1 after epochs 8 and 11.
#
# No weight decay for every parameter whose full name contains one of the custom keys (substring
# match). With stm_mm's module names that is: the blocks' `norm1`/`norm2`, the detection
# `out_norms`, (classification `stage_norms`), U-PVT's `mixer.sr_norm`, U-InternImage's
# `mixer.offset_norm` and Swin's `relative_position_bias_table` -- exactly the parameters the
# authors' names exempt. The LayerNorms in the stem and transitions (`stem.1`, `stem.4`,
# `transitions.k.1`) do not contain 'norm' and, as in the authors' run, ARE decayed, as are
# biases, layer scales, PVT position tables and Halo relative tables.
# ('absolute_pos_embed' matches nothing in these models; kept from the authors' config.)
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=12, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', begin=0, end=12, by_epoch=True, milestones=[8, 11], gamma=0.1)
]

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(
        custom_keys={
            'absolute_pos_embed': dict(decay_mult=0.),
            'relative_position_bias_table': dict(decay_mult=0.),
            'norm': dict(decay_mult=0.)
        }))

# The authors launched with --auto-scale-lr: lr scales with the total batch relative to 16
# (8 GPUs x 2 images leaves it at 1e-4).
auto_scale_lr = dict(enable=True, base_batch_size=16)
