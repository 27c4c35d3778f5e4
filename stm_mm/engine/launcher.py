"""What tools/train.py and tools/test.py do, as functions: config overrides, launchers, Runner.

MMEngine's own launchers assume CUDA (``torch.cuda.set_device`` in ``init_dist``), so on a
machine without a GPU the process group is created here with the gloo backend before the
Runner sees it, and DDP is told not to pin devices. With a GPU, MMEngine's launchers run as usual.
"""
import os
import os.path as osp

import torch
import torch.distributed as dist


def apply_cli_options(cfg, work_dir=None, resume=None, load_from=None, amp=False,
                      auto_scale_lr=False, no_validate=False, launcher='none', cfg_options=None):
    """Apply the usual mmpretrain/mmdet command-line flags to a loaded ``Config``.

    ``resume`` is ``None`` (no resume), ``'auto'`` (latest checkpoint in the work dir) or a path.
    """
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    cfg.launcher = launcher
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        name = osp.splitext(osp.basename(cfg.filename))[0] if cfg.filename else 'run'
        cfg.work_dir = osp.join('./work_dirs', name)
    if resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif resume is not None:
        if not osp.isfile(resume):
            raise FileNotFoundError(f'--resume {resume}: no such checkpoint file')
        cfg.resume = True
        cfg.load_from = resume
    if load_from is not None:
        cfg.load_from = load_from
    if amp:
        if not torch.cuda.is_available():
            raise RuntimeError('--amp needs a CUDA GPU (MMEngine\'s AmpOptimWrapper); '
                               'run without --amp on the CPU')
        wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
        if wrapper != 'AmpOptimWrapper':
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in cfg.auto_scale_lr:
            raise KeyError('--auto-scale-lr needs `auto_scale_lr = dict(base_batch_size=...)` '
                           'in the config')
        cfg.auto_scale_lr.enable = True
    if no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    return cfg


def init_distributed(cfg):
    """Create the process group for ``cfg.launcher`` when MMEngine cannot (no GPU).

    On the CPU: gloo backend, DDP without ``device_ids``. Returns True when distributed.
    """
    if cfg.launcher == 'none':
        return False
    if torch.cuda.is_available():
        return True  # MMEngine's init_dist handles nccl and device placement
    if cfg.launcher != 'pytorch':
        raise RuntimeError(f'launcher {cfg.launcher!r} on a machine without a GPU is not '
                           'supported; use --launcher pytorch (tools/dist_train.sh)')
    for var in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'):
        if var not in os.environ:
            raise RuntimeError(f'--launcher pytorch needs {var} in the environment; start the '
                               'job with tools/dist_train.sh or torchrun')
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = 'gloo'
    cfg.model_wrapper_cfg = dict(type='MMDistributedDataParallel', device_ids=None,
                                 broadcast_buffers=False)
    return True


def finish_distributed():
    """Tear the process group down cleanly (gloo aborts the interpreter otherwise)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def build_runner(cfg):
    """The Runner named by the config (``runner_type``) or MMEngine's default one."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)
