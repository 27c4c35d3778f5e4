# A short iteration-based schedule for digit scenes on a CPU: AdamW with the COCO recipe's
# decay groups, a higher lr for the short run, 50 warm-up iterations, x0.1 for the last quarter;
# one evaluation at the end. 400 iterations take about 3.5 min on 2 idle CPU cores (U-Halo-micro);
# to change the length, override train_cfg.max_iters, param_scheduler.1.end and .milestones.
max_iters = 400
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=50),
    dict(type='MultiStepLR', begin=0, end=max_iters, by_epoch=False,
         milestones=[int(max_iters * 0.75)], gamma=0.1)
]

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=4e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(
        custom_keys={
            'absolute_pos_embed': dict(decay_mult=0.),
            'relative_position_bias_table': dict(decay_mult=0.),
            'norm': dict(decay_mult=0.)
        }))

auto_scale_lr = dict(enable=False, base_batch_size=4)
