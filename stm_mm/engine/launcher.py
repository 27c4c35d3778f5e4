"""What tools/train.py and tools/test.py do, as functions: config overrides, launchers, Runner.

MMEngine's own launchers assume CUDA (``torch.cuda.set_device`` in ``init_dist``), so on a
machine without a GPU the process group is created here with the gloo backend before the
Runner sees it, and DDP is told not to pin devices. With a GPU, MMEngine's launchers run as usual.
"""
import os
import os.path as osp
import re

import torch
import torch.distributed as dist

from ..errors import LaunchError, is_known


def apply_cli_options(cfg, work_dir=None, resume=None, load_from=None, amp=False,
                      auto_scale_lr=False, no_validate=False, launcher='none', cfg_options=None,
                      skip_invalid=False, skip_list=None, non_strict_load=False, compile=False):
    """Apply the usual mmpretrain/mmdet command-line flags to a loaded ``Config``.

    ``resume`` is ``None`` (no resume), ``'auto'`` (latest checkpoint in the work dir) or a path.
    ``skip_invalid`` / ``skip_list`` / ``non_strict_load`` set ``reliability.skip_invalid`` /
    ``reliability.skip_list`` / ``reliability.strict_load=False`` (see
    :mod:`stm_mm.engine.runner`); a skip list implies ``skip_invalid``. ``compile`` sets
    ``compile=True``: the Runner compiles the backbone (:class:`~stm_mm.engine.compile_hook.
    CompileBackboneHook`).
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
    if compile:
        cfg.compile = True
    if auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in cfg.auto_scale_lr:
            raise KeyError('--auto-scale-lr needs `auto_scale_lr = dict(base_batch_size=...)` '
                           'in the config')
        cfg.auto_scale_lr.enable = True
    if no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    if skip_invalid or skip_list or non_strict_load:
        reliability = dict(cfg.get('reliability') or {})
        if skip_list:
            if not osp.isfile(skip_list):
                raise FileNotFoundError(f'--skip-list {skip_list}: no such file; fix: write it '
                                        'with tools/analysis_tools/check_images.py')
            reliability['skip_list'] = osp.abspath(skip_list)
        if skip_invalid or skip_list:
            reliability['skip_invalid'] = True
        if non_strict_load:
            reliability['strict_load'] = False
        cfg.reliability = reliability
    return cfg


def _env_int(name, env):
    value = env.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise LaunchError(f'{name}={value!r} in the environment is not an integer; fix: start '
                          'the job with torchrun / tools/dist_train.sh') from None


def check_launch_env(launcher, env=None):
    """Raise :class:`LaunchError` for an inconsistent distributed launch, before any
    process group is created (a wrong one hangs in ``init_process_group`` instead).

    * ``--launcher none`` with ``WORLD_SIZE`` > 1: every process would train the whole job
      and overwrite the same checkpoints;
    * ``pytorch``: ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` / ``LOCAL_WORLD_SIZE`` must be
      integers with ``0 <= RANK < WORLD_SIZE``, ``0 <= LOCAL_RANK < LOCAL_WORLD_SIZE <=
      WORLD_SIZE`` and, with GPUs, ``LOCAL_RANK`` < the number of visible GPUs;
    * ``slurm``: ``SLURM_PROCID`` < ``SLURM_NTASKS``.
    """
    env = os.environ if env is None else env
    world = _env_int('WORLD_SIZE', env)
    if launcher == 'none':
        if world is not None and world > 1:
            raise LaunchError(f'WORLD_SIZE={world} in the environment but --launcher none: each '
                              'process would train the whole job and overwrite the same '
                              'checkpoints; fix: add --launcher pytorch (or use '
                              'tools/dist_train.sh)')
        return
    if launcher == 'pytorch':
        rank, local_rank = _env_int('RANK', env), _env_int('LOCAL_RANK', env)
        local_world = _env_int('LOCAL_WORLD_SIZE', env)
        if world is not None and world < 1:
            raise LaunchError(f'WORLD_SIZE={world} must be >= 1; fix: start the job with '
                              'torchrun --nproc-per-node N')
        if world is not None and rank is not None and not 0 <= rank < world:
            raise LaunchError(f'RANK={rank} is not in 0..WORLD_SIZE-1 (WORLD_SIZE={world}): the '
                              'job would wait forever for missing ranks; fix: make WORLD_SIZE '
                              'the total number of processes (nnodes x nproc-per-node)')
        if local_world is not None and world is not None and local_world > world:
            raise LaunchError(f'LOCAL_WORLD_SIZE={local_world} (processes on this node) exceeds '
                              f'WORLD_SIZE={world}; fix: WORLD_SIZE must count every process '
                              'of the job')
        if local_rank is not None and local_world is not None and not \
                0 <= local_rank < local_world:
            raise LaunchError(f'LOCAL_RANK={local_rank} is not in 0..LOCAL_WORLD_SIZE-1 '
                              f'(LOCAL_WORLD_SIZE={local_world}); fix: let torchrun set them')
        if local_rank is not None and torch.cuda.is_available() and \
                local_rank >= torch.cuda.device_count():
            raise LaunchError(f'LOCAL_RANK={local_rank} but only {torch.cuda.device_count()} '
                              'GPU(s) are visible; fix: --nproc-per-node at most the GPU count')
    elif launcher == 'slurm':
        procid, ntasks = _env_int('SLURM_PROCID', env), _env_int('SLURM_NTASKS', env)
        if procid is not None and ntasks is not None and not 0 <= procid < ntasks:
            raise LaunchError(f'SLURM_PROCID={procid} is not below SLURM_NTASKS={ntasks}')


def init_distributed(cfg):
    """Create the process group for ``cfg.launcher`` when MMEngine cannot (no GPU).

    On the CPU: gloo backend, DDP without ``device_ids``. Returns True when distributed.
    """
    check_launch_env(cfg.launcher)
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


def finish_distributed(barrier=True):
    """Tear the process group down cleanly (gloo aborts the interpreter otherwise).

    ``barrier=False`` after an error: other ranks may never reach the barrier.
    """
    if dist.is_available() and dist.is_initialized():
        if barrier:
            dist.barrier()
        dist.destroy_process_group()


def build_runner(cfg):
    """The Runner named by the config (``runner_type``), else :class:`ReliableRunner`
    (MMEngine's Runner with atomic checkpoints, safe auto-resume, input checks, finite-loss
    guard; see :mod:`stm_mm.engine.runner`)."""
    from mmengine.registry import RUNNERS

    from .runner import ReliableRunner
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return ReliableRunner.from_cfg(cfg)


def check_data_first(cfg, entry):
    """Missing annotation files and image folders of the splits ``entry`` reads fail here,
    before the model and the runner (and their logs) are built."""
    from stm_mm.datasets.validation import check_data_exists

    from .runner import reliability_options
    if not reliability_options(cfg)['check_data']:
        return
    for split in (('train', 'val') if entry == 'train' else (entry, )):
        loader = cfg.get(f'{split}_dataloader')
        if split == 'val' and cfg.get('val_cfg') is None:  # --no-validate
            continue
        if isinstance(loader, dict) and isinstance(loader.get('dataset'), dict):
            check_data_exists(loader['dataset'], split)


def run_job(cfg, entry):
    """``build_runner(cfg).<entry>()`` (``'train'``, ``'test'``) inside the process group that
    ``cfg.launcher`` asks for, after :func:`check_data_first`; returns what it returns."""
    check_data_first(cfg, entry)
    init_distributed(cfg)
    try:
        result = getattr(build_runner(cfg), entry)()
    except BaseException:
        finish_distributed(barrier=False)  # other ranks may never reach a barrier
        raise
    finish_distributed()
    return result


_REGISTRY_PREFIX = re.compile(r'^(class `[^`]+` in [^:]+: )+')
_WORKER_ERROR = re.compile(r'^Caught \w+ in DataLoader worker process \d+\.')
_EXC_PREFIX = re.compile(r'^[\w.]+(Error|Exception)\w*: ')


def worker_error_message(text):
    """The original message of an error re-raised from a DataLoader worker (PyTorch replaces it
    with "Caught X in DataLoader worker process N." and the worker's traceback)."""
    if not _WORKER_ERROR.match(text) or 'Original Traceback' not in text:
        return text
    last = [line for line in text.splitlines() if line.strip()][-1]
    return _EXC_PREFIX.sub('', last, count=1)


def format_error(exc):
    """The message of ``exc`` for a one-line CLI report: registry wrappers ("class `X` in
    path: ...") and KeyError quoting removed, exception type kept for unexpected errors."""
    text = exc.args[0] if len(exc.args) == 1 and isinstance(exc.args[0], str) else str(exc)
    text = worker_error_message(text)
    for _ in range(5):  # nested wrappers quote the inner message once per level
        stripped = _REGISTRY_PREFIX.sub('', text).strip()
        if len(stripped) >= 2 and stripped[0] == stripped[-1] and stripped[0] in '"\'':
            stripped = stripped[1:-1]
        if stripped == text:
            break
        text = stripped
    return text if is_known(exc) else f'{type(exc).__name__}: {text}'


def exit_code_of(exc):
    """2 for bad input (config, data, checkpoint, launch), 3 for a stopped run (NaN loss)."""
    return getattr(exc, 'exit_code', 2)
