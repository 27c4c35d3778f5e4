"""``ReliableRunner``: MMEngine's Runner made safe against crashes and bad input.

What it changes (``build_runner`` selects it for every config that names no ``runner_type``):

Checkpoints
    * written atomically (temporary file, fsync, rename) through the ``'stm_mm_atomic'`` file
      backend; old checkpoints are deleted only after the new one is complete
      (:class:`~stm_mm.engine.hooks.ReliableCheckpointHook` replaces ``CheckpointHook``);
    * a checkpoint is never written while any weight is NaN/Inf;
    * the RNG states are stored in ``meta['rng_state']`` and restored on resume at the point
      where the uninterrupted run was (:mod:`~stm_mm.engine.rng`); each training sample is
      augmented with RNGs seeded from (seed, rank, epoch, position)
      (:mod:`stm_mm.datasets.sample_seeds`); data loaders' ``iter()`` leaves the global RNG
      alone; validation runs with the RNG states saved and restored around it;
    * a full disk is named, with the checkpoint that is still intact.
Resume (:mod:`~stm_mm.engine.resume`)
    * auto-resume (``--resume``) tries the pointer's file first and falls back to the newest
      loadable checkpoint, logging every file it skips;
    * a config without a seed resumes with the checkpoint's seed, so data order is unchanged.
Bad input, before training (:mod:`~stm_mm.engine.preflight`)
    * ``load_from`` / resume: the checkpoint must fit the model (:class:`~stm_mm.engine.loading.
      KeyMismatch`; opt out with ``reliability=dict(strict_load=False)``); ``init_cfg`` Pretrained
      files, datasets, images and input sizes are checked.
* a NaN/Inf loss stops training (:class:`~stm_mm.engine.hooks.FiniteLossHook`);
* ``compile`` compiles the backbone's forward (:class:`~stm_mm.engine.compile_hook.
  CompileBackboneHook`), not MMEngine's whole ``train_step``.

Options: ``reliability = dict(...)`` in the config, keys of :data:`DEFAULT_OPTIONS`.
"""
import copy
import os.path as osp

import torch
from mmengine.hooks import CheckpointHook
from mmengine.model import is_model_wrapper
from mmengine.registry import RUNNERS
from mmengine.runner import Runner
from torch.utils.data import DataLoader

from ..datasets.sample_seeds import RngNeutralDataLoader
from ..errors import CheckpointError, NonFiniteLossError, ReliabilityError
from ..fileio import ATOMIC_BACKEND_ARGS
from ..patches import install, load_request, mark_loaded, randomness_cfg
from . import preflight
from .hooks import FiniteLossHook, ReliableCheckpointHook
from .loading import KeyMismatch, first_line, is_disk_full, is_local, load_weights, \
    read_checkpoint, weights_of
from .resume import (checkpoint_dirs, find_resumable_checkpoint, last_good_checkpoint,
                     peek_seed, pointer_target)
from .rng import RestoreRngAfter, rng_isolated, rng_state, set_rng_state

DEFAULT_OPTIONS = dict(
    strict_load=True,        # load_from / resume: the checkpoint must fit the model exactly
    skip_invalid=False,      # drop invalid annotations (cleaned json in the work dir)
    check_data=True,         # validate datasets before training / testing
    check_input_size=True,   # probe the model with each pipeline's output size
    finite_loss=True,        # inject FiniteLossHook
    save_rng_state=True,     # store and restore RNG states for exact resumes
    max_unreadable=0.01,     # skip_invalid: largest share of undecodable images per split
    skip_list=None,          # skip_invalid: images to skip unread (check_images.py's list)
    max_image_pixels=89_478_485,  # larger images are unreadable (Pillow's limit; None: none)
)
_FIT_FIX = ('fix: use a checkpoint of this config (stm, arch, num_classes), or, for a partial '
            'load on purpose, --non-strict-load (config: reliability=dict(strict_load=False))')


def reliability_options(cfg):
    """``DEFAULT_OPTIONS`` updated with the config's ``reliability`` dict (unknown keys fail)."""
    opts = dict(DEFAULT_OPTIONS)
    given = cfg.get('reliability') if cfg is not None else None
    if given:
        unknown = sorted(set(given) - set(DEFAULT_OPTIONS))
        if unknown:
            raise ReliabilityError(f'unknown reliability option(s) {unknown}; valid: '
                                   f'{", ".join(DEFAULT_OPTIONS)}')
        opts.update(given)
    return opts


def _unwrap(model):
    return model.module if is_model_wrapper(model) else model


@RUNNERS.register_module()
class ReliableRunner(Runner):
    """See the module docstring. A drop-in replacement of ``mmengine.runner.Runner``."""

    def __init__(self, *args, **kwargs):
        install()  # MMEngine reads checkpoints weights-only (stm_mm.patches)
        self.reliability = reliability_options(kwargs.get('cfg'))
        self._ckpt_cache = None     # (path, checkpoint) verified by the auto-resume lookup
        self._fit_check = False     # the next load_checkpoint must fit the model exactly
        self._loaded_meta = None
        super().__init__(*args, **kwargs)

    @property
    def resumes(self):
        """Whether this run resumes (``--resume``)."""
        return bool(load_request(self)[0])

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_cfg(cls, cfg):
        cfg = copy.deepcopy(cfg)
        reliability_options(cfg)  # unknown option names fail before anything is built
        randomness = cfg.get('randomness') or {}
        if cfg.get('resume') and randomness.get('seed') is None:
            # without a seed, a resumed run would draw a new one and shuffle the data in another
            # order; use the seed the checkpoint was trained with (Runner.resume does this too,
            # but only after the dataloaders exist)
            seed = peek_seed(cfg.get('load_from') or pointer_target(cfg.get('work_dir')))
            if seed is not None:
                cfg.randomness = dict(randomness, seed=seed)
        if cfg.get('compile'):
            # MMEngine would compile the whole train_step (CompileBackboneHook says why not)
            cfg.custom_hooks = list(cfg.get('custom_hooks') or []) + [
                dict(type='CompileBackboneHook', options=cfg.compile)]
            cfg.compile = False
        return super().from_cfg(cfg)

    def register_default_hooks(self, hooks=None):
        hooks = dict(hooks) if hooks is not None else {}
        ckpt = hooks.get('checkpoint', dict(type='CheckpointHook', interval=1))
        if isinstance(ckpt, dict) and ckpt.get('type') in ('CheckpointHook',
                                                           'mmengine.CheckpointHook',
                                                           CheckpointHook):
            hooks['checkpoint'] = dict(ckpt, type=ReliableCheckpointHook)
        super().register_default_hooks(hooks)

    def register_hooks(self, default_hooks=None, custom_hooks=None):
        super().register_hooks(default_hooks, custom_hooks)
        if self.reliability['finite_loss'] and not any(
                isinstance(h, FiniteLossHook) for h in self.hooks):
            self.register_hook(FiniteLossHook())

    # ------------------------------------------------------------------ entry points
    def train(self):
        self._check(('train', 'val'))
        if self.reliability['save_rng_state']:
            preflight.seed_samples(self)
        if self.reliability['check_input_size']:
            preflight.check_input_sizes(self, ('train', 'val'))
        preflight.check_pretrained_inits(self)
        return super().train()

    def val(self):
        self._check(('val', ))
        return super().val()

    def test(self):
        self._check(('test', ))
        return super().test()

    def _check(self, splits):
        if self.reliability['check_data']:
            preflight.check_data(self, splits)
        preflight.guard_images(self, splits)

    def build_val_loop(self, loop):
        """The val loop, run with the RNG states saved before and restored after it.

        Validation draws random numbers (every ``iter(DataLoader)`` takes a base seed from
        torch's global RNG). Without the isolation the training after a validation would depend
        on it, and a run resumed from the checkpoint written just before that validation would
        diverge from the uninterrupted one.
        """
        loop = super().build_val_loop(loop)
        if self.reliability['save_rng_state'] and not getattr(loop.run, 'rng_isolated', False):
            loop.run = rng_isolated(loop.run)
        return loop

    @staticmethod
    def build_dataloader(dataloader, seed=None, diff_rank_seed=False):
        """``Runner.build_dataloader``; the loader's ``iter()`` leaves torch's global RNG alone
        (:class:`~stm_mm.datasets.sample_seeds.RngNeutralDataLoader`)."""
        loader = Runner.build_dataloader(dataloader, seed, diff_rank_seed)
        if type(loader) is DataLoader:
            loader.__class__ = RngNeutralDataLoader
        return loader

    # ------------------------------------------------------------------ checkpoints: load
    def find_resumable_checkpoint(self):
        """The path auto-resume starts from (:func:`~stm_mm.engine.resume.
        find_resumable_checkpoint`), or None when the work dir holds no checkpoint."""
        out_dirs = [getattr(h, 'out_dir', None) for h in self.hooks
                    if isinstance(h, CheckpointHook)]
        found = find_resumable_checkpoint(self.work_dir, checkpoint_dirs(self.work_dir, out_dirs),
                                          self.logger)
        if found is None:
            return None
        self._ckpt_cache = found
        return found[0]

    def load_or_resume(self):
        resume, load_from, has_loaded = load_request(self)
        if has_loaded:
            return
        if resume and load_from is None:
            path = self.find_resumable_checkpoint()
            if path is None:
                self.logger.warning(f'--resume: no checkpoint in {self.work_dir}; training '
                                    'starts from scratch')
                return
            self.logger.info(f'Auto resumed from the latest checkpoint {path}.')
            self.resume(path)
        elif resume:
            self.resume(load_from)
        elif load_from is not None:
            self._fit_check = self.reliability['strict_load']
            try:
                self.load_checkpoint(load_from)
            finally:
                self._fit_check = False
        else:
            return
        mark_loaded(self)

    def load_checkpoint(self, filename, map_location='cpu', strict=False,
                        revise_keys=[(r'^module.', '')]):
        if self._ckpt_cache is not None and self._ckpt_cache[0] == filename:
            checkpoint = self._ckpt_cache[1]
            self._ckpt_cache = None
        else:
            checkpoint = read_checkpoint(filename, map_location=map_location)
        model = _unwrap(self.model)
        if self._fit_check:
            mismatch = KeyMismatch.between(model.state_dict(), weights_of(checkpoint, revise_keys))
            if not mismatch.fits:
                raise CheckpointError(f'checkpoint {filename} does not fit the model: '
                                      f'{mismatch.describe()}; {_FIT_FIX}', 'does not fit')
        self._loaded_meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        load_weights(model, checkpoint, strict, revise_keys)
        mark_loaded(self)
        self.logger.info(f'Load checkpoint from {filename}')
        return checkpoint

    def resume(self, filename, resume_optimizer=True, resume_param_scheduler=True,
               map_location='default'):
        self._fit_check = True  # resuming another model's checkpoint is never intended
        try:
            super().resume(filename, resume_optimizer, resume_param_scheduler, map_location)
        except CheckpointError as e:
            if e.kind != 'truncated or corrupt':
                raise
            raise CheckpointError(f'{e}, or resume from an earlier checkpoint (--resume '
                                  'without a path picks the newest complete one)', e.kind) from None
        finally:
            self._fit_check = False
        self._restore_rng((self._loaded_meta or {}).get('rng_state'))

    def _restore_rng(self, state):
        if not (state and self.reliability['save_rng_state']):
            return
        if randomness_cfg(self).get('diff_rank_seed') and self.world_size > 1:
            self.logger.info('diff_rank_seed: RNG states are per rank and not restored')
            return
        loop = self.train_loop
        if hasattr(loop, 'dataloader_iterator') and self.iter > 0:
            # IterBasedTrainLoop first fetches (and discards) `iter` batches, which draws
            # random numbers in the data pipeline: restore the RNG after those
            loop.dataloader_iterator = RestoreRngAfter(loop.dataloader_iterator, self.iter, state)
        else:
            set_rng_state(state)

    # ------------------------------------------------------------------ checkpoints: save
    def _assert_finite_weights(self):
        for name, tensor in _unwrap(self.model).state_dict().items():
            if torch.is_tensor(tensor) and tensor.is_floating_point() and \
                    not bool(torch.isfinite(tensor).all()):
                raise NonFiniteLossError(
                    f'weights are non-finite at iteration {self.iter + 1} ({name} holds '
                    'NaN/Inf); refusing to save a checkpoint of this state; the last good '
                    'checkpoint is kept; fix: lower the learning rate or clip gradients')

    def save_checkpoint(self, out_dir, filename, file_client_args=None, save_optimizer=True,
                        save_param_scheduler=True, meta=None, by_epoch=True, backend_args=None):
        """``Runner.save_checkpoint`` writing atomically (local paths, through the
        ``'stm_mm_atomic'`` backend), with the RNG states, refusing non-finite weights."""
        self._assert_finite_weights()  # on every rank: all of them must stop together
        if self.rank != 0:
            return
        if meta is None:
            meta = {}
        elif not isinstance(meta, dict):
            raise TypeError(f'meta should be a dict or None, but got {type(meta)}')
        if self.reliability['save_rng_state']:
            meta.setdefault('rng_state', rng_state())
        if file_client_args is None and backend_args is None and is_local(out_dir):
            backend_args = ATOMIC_BACKEND_ARGS
        try:
            return super().save_checkpoint(out_dir, filename, file_client_args, save_optimizer,
                                           save_param_scheduler, meta, by_epoch, backend_args)
        except Exception as e:  # noqa: B902 - a full disk is named, the rest re-raised
            if not is_disk_full(e):
                raise
            path = osp.join(out_dir, filename)
            intact = last_good_checkpoint(self.work_dir)
            kept = (f'{intact} is intact (last_checkpoint points to it)' if intact else
                    'no earlier checkpoint exists')
            raise CheckpointError(
                f'the disk is full: writing checkpoint {path} failed '
                f'[{type(e).__name__}: {first_line(e, 120)}]; the partial file was deleted and '
                f'{kept}; fix: free space on that disk (or move work_dir), then continue with '
                '--resume', 'disk full') from None
