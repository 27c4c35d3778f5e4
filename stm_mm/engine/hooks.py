"""Hooks that keep a run's data safe: finite-loss guard and a crash-safe checkpoint hook.

* :class:`FiniteLossHook` stops training at the first non-finite loss term, naming the
  iteration and the term, before any other hook (in particular ``CheckpointHook``) sees the
  broken state, so the last good checkpoint stays the newest one.
* :class:`ReliableCheckpointHook` is MMEngine's ``CheckpointHook`` with a safe order of
  operations: the new checkpoint is written first (atomically, by ``ReliableRunner``), then the
  ``last_checkpoint`` pointer is replaced atomically, and only then are old checkpoints deleted
  (MMEngine deletes the oldest one *before* writing the new one, so with ``max_keep_ckpts=1`` a
  crash during the write leaves no checkpoint at all).

Both are registered in MMEngine's ``HOOKS`` and injected by :class:`~stm_mm.engine.runner.
ReliableRunner`, so every config gets them.
"""
import math
import os
import os.path as osp
import re
import tempfile
import time

import torch
from mmengine.dist import all_reduce, get_world_size, is_main_process
from mmengine.hooks import CheckpointHook, Hook
from mmengine.registry import HOOKS

TEMP_SUFFIX = '.partial'  # temporary files: '.<name>.<random>.partial' in the target folder


def _fsync_dir(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path, write, mode='wb'):
    """Create ``path`` all-or-nothing: ``write(f)`` fills a temporary file in the same folder,
    which is flushed, fsynced and renamed over ``path`` (then the folder is fsynced).

    A crash at any moment leaves either the old file or the complete new one; at worst a
    ``.<name>.*.partial`` file remains (see :func:`remove_stale_temp_files`).
    """
    directory = osp.dirname(osp.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{osp.basename(path)}.', suffix=TEMP_SUFFIX,
                               dir=directory)
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(directory)


def atomic_write_text(path, text):
    atomic_write(path, lambda f: f.write(text), mode='w')


def remove_stale_temp_files(directory, min_age_s=0.0):
    """Delete ``.*.partial`` files left in ``directory`` by interrupted atomic writes."""
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    now = time.time()
    for name in names:
        if name.startswith('.') and name.endswith(TEMP_SUFFIX):
            path = osp.join(directory, name)
            try:
                if now - os.path.getmtime(path) >= min_age_s:
                    os.unlink(path)
                    removed.append(path)
            except OSError:
                pass
    return removed


class NonFiniteLossError(RuntimeError):
    """Training stopped on a NaN/Inf loss; the message names the iteration and the term."""

    exit_code = 3


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


def last_good_checkpoint(runner):
    """The checkpoint a ``--resume`` would start from, for messages (None if unknown)."""
    pointer = osp.join(runner.work_dir, 'last_checkpoint')
    try:
        with open(pointer) as f:
            path = f.read().strip()
        return path or None
    except OSError:
        return None


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
        last = last_good_checkpoint(runner)
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

    Order per save: write the new checkpoint (atomic in ``ReliableRunner.save_checkpoint``),
    replace ``last_checkpoint`` atomically, then delete checkpoints beyond ``max_keep_ckpts``
    and superseded ``best_*`` files, and any older checkpoint of the same name pattern that a
    run killed before its deletion left behind. Stale temporary files of killed writes are
    removed when training starts.
    """

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

    def _flush_removals(self):
        # (no file_backend before before_train: runner.val() alone evaluates without training)
        backend = getattr(self, 'file_backend', None)
        if isinstance(backend, _DeferredRemovalBackend) and is_main_process():
            keep = [self.last_ckpt, getattr(self, 'best_ckpt_path', None)]
            keep += list((getattr(self, 'best_ckpt_path_dict', None) or {}).values())
            backend.flush(keep)

    def _save_checkpoint_with_step(self, runner, step, meta):
        to_remove = []
        if self.max_keep_ckpts > 0:
            if not (len(self.keep_ckpt_ids) > 0 and self.keep_ckpt_ids[-1] == step):
                if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                    old = self.keep_ckpt_ids.popleft()
                    to_remove.append(
                        self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(old)))
                self.keep_ckpt_ids.append(step)
                runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))

        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)

        runner.save_checkpoint(
            self.out_dir,
            ckpt_filename,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)

        if not is_main_process():
            return
        atomic_write_text(osp.join(runner.work_dir, 'last_checkpoint'), str(self.last_ckpt))
        for path in to_remove:
            if isinstance(self.file_backend, _DeferredRemovalBackend):
                self.file_backend.remove(path)
            else:
                self._remove_now(path)
        self._flush_removals()
        if self.max_keep_ckpts > 0 and '://' not in str(self.out_dir):
            self._remove_stale_checkpoints(runner, step)

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

    def _remove_now(self, path):
        if self.file_backend.isfile(path):
            self.file_backend.remove(path)

    def after_val_epoch(self, runner, metrics):
        super().after_val_epoch(runner, metrics)
        self._flush_removals()


_NUMBER = re.compile(r'(\d+)')


def checkpoint_sort_key(path):
    """Newest first when sorted in reverse: (number in the name, modification time)."""
    numbers = _NUMBER.findall(osp.basename(path))
    try:
        mtime = os.path.getmtime(path)
    except OSError:
        mtime = 0.0
    return (int(numbers[-1]) if numbers else -1, mtime)
