# Runtime shared by the classification configs (mmpretrain registries).
default_scope = 'mmpretrain'

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=100),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # one checkpoint per epoch, the last 3 kept, plus the best top-1 of the raw weights
    # ("best_accuracy_top1_*.pth") and of the EMA ("best_accuracy_ema_top1_*.pth"), as the
    # authors keep max_accuracy and max_accuracy_ema. The EMA keys come from DualEvalEMAHook
    # (ImageNet schedules); a config without it sets its own save_best (digits: None).
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3,
                    save_best=['accuracy/top1', 'accuracy_ema/top1'], rule='greater'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='VisualizationHook', enable=False),
)

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # tools/train.py switches to gloo on a machine without a GPU
    dist_cfg=dict(backend='nccl'),
)

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)

log_level = 'INFO'
load_from = None
resume = False

# The authors seed every process with 0 + rank.
randomness = dict(seed=0, diff_rank_seed=True, deterministic=False)
