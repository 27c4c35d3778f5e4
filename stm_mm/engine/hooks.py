"""Hooks that keep a run's data safe: finite-loss guard and a crash-safe checkpoint hook.

* :class:`FiniteLossHook` stops training at the first non-finite loss term, naming the
  iteration and the term, before any other hook (in particular ``CheckpointHook``) sees the
  broken state, so the last good checkpoint stays the newest one.
* :class:`ReliableCheckpointHook` is MMEngine's ``CheckpointHook`` with a safe order of
  operations: the new checkpoint is written first (atomically), and only then are old
  checkpoints deleted (MMEngine deletes the oldest one *before* writing the new one, so with
  ``max_keep_ckpts=1`` a crash during the write would leave no checkpoint at all).

Both are registered in MMEngine's ``HOOKS`` and injected by :class:`~stm_mm.engine.runner.
ReliableRunner`, so every config gets them.
"""
import math
import os
import os.path as osp
import re

import torch
from mmengine.dist import all_reduce, get_world_size, is_main_process
from mmengine.hooks import CheckpointHook, Hook
from mmengine.registry import HOOKS

from ..errors import NonFiniteLossError
from ..fileio import ATOMIC_BACKEND_ARGS, remove_stale_temp_files
from .resume import last_good_checkpoint


def _value(v):
    if hasattr(v, 'detach'):
        v = v.detach()
        if v.numel() != 1:
            return float('nan') if not bool(v.isfinite().all()) else float(v.float().mean())
        return float(v.float().item())
    if isinstance(v, (list, tuple)):
        vals = [_value(x) for x in v]
        bad = [x for x in vals if not math.isfinite(x)]
        return bad[0] if bad else (sum(vals) if vals else 0.0)
    return float(v)


@HOOKS.register_module()
class FiniteLossHook(Hook):
    """Raise :class:`NonFiniteLossError` when a loss term of a training step is NaN or Inf.

    Runs first in ``after_train_iter`` (priority HIGHEST): the exception ends ``runner.train()``
    before the checkpoint hook can save the broken weights. Terms are the ``outputs`` keys that
    contain ``'loss'``; the message names the specific terms (``loss_cls``) before the total.
    """

    priority = 'HIGHEST'

    def __init__(self, keys_containing='loss'):
        self.keys_containing = keys_containing

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if not isinstance(outputs, dict):
            return
        bad = {}
        for key, value in outputs.items():
            if self.keys_containing not in key:
                continue
            try:
                v = _value(value)
            except (TypeError, ValueError):
                continue
            if not math.isfinite(v):
                bad[key] = v
        if get_world_size() > 1:
            # all ranks must stop together, or the others wait forever in the next all-reduce
            flag = torch.tensor([1.0 if bad else 0.0])
            all_reduce(flag)
            if flag.item() > 0 and not bad:
                raise NonFiniteLossError(
                    f'non-finite loss on another rank at iteration {runner.iter + 1}; training '
                    'stopped without saving this state (see that rank\'s message)')
        if not bad:
            return
        # the specific terms first, the total ('loss') last
        terms = sorted(bad, key=lambda k: (k == 'loss', k))
        shown = ', '.join(f'{k}={bad[k]}' for k in terms)
        last = last_good_checkpoint(runner.work_dir)
        keep = (f'the last good checkpoint is {last} (continue with --resume)' if last else
                'no checkpoint had been written yet')
        raise NonFiniteLossError(
            f'non-finite loss at iteration {runner.iter + 1} (epoch {runner.epoch + 1}): '
            f'{shown}; training stopped without saving this state, {keep}; fix: lower the '
            'learning rate or warm it up longer, clip gradients (optim_wrapper.clip_grad), or '
            'look for bad samples/labels in the data')


class _DeferredRemovalBackend:
    """Wraps a file backend: ``remove`` / ``rmtree`` are queued until :meth:`flush`."""

    def __init__(self, backend):
        self._backend = backend
        self.pending = []

    def __getattr__(self, name):
        return getattr(self._backend, name)

    def remove(self, path):
        self.pending.append(('remove', path))

    def rmtree(self, path):
        self.pending.append(('rmtree', path))

    def flush(self, keep=()):
        keep = {osp.abspath(p) for p in keep if p}
        pending, self.pending = self.pending, []
        for op, path in pending:
            if osp.abspath(str(path)) in keep:
                continue
            try:
                if op == 'remove' and self._backend.isfile(path):
                    self._backend.remove(path)
                elif op == 'rmtree' and self._backend.isdir(path):
                    self._backend.rmtree(path)
            except OSError:
                pass


@HOOKS.register_module()
class ReliableCheckpointHook(CheckpointHook):
    """``CheckpointHook`` that never leaves a run without a complete checkpoint.

    Built on ``CheckpointHook``'s public options: with a local ``out_dir`` and no
    ``backend_args`` of its own, checkpoints are written through the ``'stm_mm_atomic'`` file
    backend (:class:`~stm_mm.fileio.AtomicLocalBackend`). The deletions that ``max_keep_ckpts``
    and ``save_best`` ask for are queued (the hook's ``file_backend`` is wrapped) and carried
    out after each hook call that saves, once the new checkpoint is complete, together with any
    older checkpoint of the same name pattern that a run killed before its deletion left
    behind. Stale temporary files of killed writes are removed when training starts.
    """

    def __init__(self, *args, out_dir=None, file_client_args=None, backend_args=None,
                 **kwargs):
        if backend_args is None and file_client_args is None and (
                out_dir is None or '://' not in str(out_dir)):
            backend_args = ATOMIC_BACKEND_ARGS
        super().__init__(*args, out_dir=out_dir, file_client_args=file_client_args,
                         backend_args=backend_args, **kwargs)

    def before_train(self, runner):
        super().before_train(runner)
        if is_main_process() and '://' not in str(self.out_dir):
            removed = remove_stale_temp_files(self.out_dir)
            if removed:
                runner.logger.warning(
                    f'Removed {len(removed)} partial checkpoint file(s) left by an interrupted '
                    f'write: {", ".join(osp.basename(p) for p in removed)}')
        if not isinstance(self.file_backend, _DeferredRemovalBackend):
            self.file_backend = _DeferredRemovalBackend(self.file_backend)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        saved = self.last_ckpt
        super().after_train_iter(runner, batch_idx, data_batch, outputs)
        self._settle(runner, saved)

    def after_train_epoch(self, runner):
        saved = self.last_ckpt
        super().after_train_epoch(runner)
        self._settle(runner, saved)

    def after_val_epoch(self, runner, metrics):
        saved = self.last_ckpt
        super().after_val_epoch(runner, metrics)
        self._settle(runner, saved)

    def _settle(self, runner, previous):
        """After a hook call: carry out the queued deletions; after a new checkpoint, delete
        the stale ones too."""
        if not is_main_process():
            return
        self._flush_removals()
        if self.last_ckpt != previous and self.max_keep_ckpts > 0 and self.keep_ckpt_ids \
                and '://' not in str(self.out_dir):
            self._remove_stale_checkpoints(runner, self.keep_ckpt_ids[-1])

    def _flush_removals(self):
        # (no file_backend before before_train: runner.val() alone evaluates without training)
        backend = getattr(self, 'file_backend', None)
        if isinstance(backend, _DeferredRemovalBackend):
            keep = [self.last_ckpt, getattr(self, 'best_ckpt_path', None)]
            keep += list((getattr(self, 'best_ckpt_path_dict', None) or {}).values())
            backend.flush(keep)

    def _remove_stale_checkpoints(self, runner, step):
        """Delete checkpoints older than ``step`` that ``max_keep_ckpts`` no longer keeps: a
        run killed between writing a checkpoint and deleting the old one leaves them, and the
        resumed run does not track them."""
        pattern = re.compile(re.escape(self.filename_tmpl).replace(r'\{\}', r'(\d+)') + '$')
        kept = set(self.keep_ckpt_ids)
        removed = []
        for name in sorted(os.listdir(self.out_dir)):
            match = pattern.match(name)
            if match and int(match.group(1)) < step and int(match.group(1)) not in kept:
                try:
                    os.unlink(osp.join(self.out_dir, name))
                    removed.append(name)
                except OSError:
                    pass
        if removed:
            runner.logger.warning(
                f'Removed {len(removed)} stale checkpoint(s) beyond max_keep_ckpts='
                f'{self.max_keep_ckpts}, left by a run killed before it deleted them: '
                f'{", ".join(removed)}')
