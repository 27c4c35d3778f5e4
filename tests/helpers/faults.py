"""Fault injection for the reliability tests (imported by configs through custom_imports).

``DeleteFileHook(path)`` deletes a file when training starts.

``FaultHook(point=..., iter=N)``:
    'train_iter'  SIGKILL before training iteration N (1-based) runs
    'val'         SIGKILL inside the validation that follows iteration N
    'ckpt_write'  the checkpoint of iteration N is half written (its temporary file), then
                  SIGKILL
    'ckpt_delete' SIGKILL after the checkpoint of iteration N and the pointer to it are
                  written, before the checkpoints beyond max_keep_ckpts are deleted
    'disk_full'   the disk fills up 1000 bytes into the checkpoint of iteration N: the write
                  raises ENOSPC (``short=False``), or fails the way torch's zip writer does
                  after a short write (``short=True``: ``unexpected pos ...``)
    'nan'         set a head weight to NaN before iteration N (the loss becomes NaN); with
                  ``rank=R`` only in process R of a distributed run
"""
import errno
import os
import signal

import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from stm_mm.fileio import AtomicLocalBackend, atomic_write


def _kill():
    os.kill(os.getpid(), signal.SIGKILL)


@HOOKS.register_module(force=True)
class FaultHook(Hook):
    priority = 'LOWEST'

    def __init__(self, point, iter, rank=None, short=False):
        self.point, self.iter, self.rank, self.short = point, iter, rank, short

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter + 1 != self.iter:
            return
        if self.point == 'train_iter':
            _kill()
        if self.point == 'nan' and self.rank in (None, runner.rank):
            model = runner.model.module if hasattr(runner.model, 'module') else runner.model
            with torch.no_grad():
                model.head.fc.weight.fill_(float('nan'))

    def before_val_iter(self, runner, batch_idx, data_batch=None):
        if self.point == 'val' and runner.iter == self.iter and batch_idx == 1:
            _kill()

    def before_save_checkpoint(self, runner, checkpoint):
        if checkpoint['meta'].get('iter') != self.iter:
            return
        if self.point == 'ckpt_delete':
            hook = next(h for h in runner.hooks if hasattr(h, '_flush_removals'))
            hook._flush_removals = _kill
        if self.point == 'disk_full':
            short = self.short
            _write_once(lambda f, data: _FullDisk(f, 1000, short).write(data))
        if self.point == 'ckpt_write':
            _write_once(_half_write_then_kill)


def _write_once(write):
    """The next checkpoint write (``AtomicLocalBackend.put``) fills its temporary file with
    ``write(f, data)`` instead of ``f.write(data)``."""
    original = AtomicLocalBackend.put

    def put(self, obj, filepath):
        AtomicLocalBackend.put = original  # this write only
        atomic_write(str(filepath), lambda f: write(f, obj))

    AtomicLocalBackend.put = put


def _half_write_then_kill(f, data):
    f.write(data[:len(data) // 2])
    f.flush()
    os.fsync(f.fileno())
    _kill()


class _FullDisk:
    """A file that takes ``room`` bytes; the write that does not fit fails."""

    def __init__(self, f, room, short):
        self._f, self._room, self._short = f, room, short

    def write(self, data):
        if len(data) > self._room:
            if self._short:
                raise RuntimeError('[enforce fail at inline_container.cc:672] . unexpected pos '
                                   f'{self._room + len(data)} vs {self._room}')
            raise OSError(errno.ENOSPC, 'No space left on device')
        self._room -= len(data)
        return self._f.write(data)

    def __getattr__(self, name):
        return getattr(self._f, name)


@HOOKS.register_module(force=True)
class DeleteFileHook(Hook):
    """Delete ``path`` when training starts: after the dataset was validated and listed."""

    def __init__(self, path):
        self.path = path

    def before_train(self, runner):
        os.remove(self.path)
