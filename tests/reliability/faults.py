"""Fault injection for the reliability tests (imported by configs through custom_imports).

``DeleteFileHook(path)`` deletes a file when training starts.

``FaultHook(point=..., iter=N)``:
    'train_iter'  SIGKILL before training iteration N (1-based) runs
    'val'         SIGKILL inside the validation that follows iteration N
    'ckpt_write'  the checkpoint of iteration N is half written, then SIGKILL
    'nan'         set a head weight to NaN before iteration N (the loss becomes NaN); with
                  ``rank=R`` only in process R of a distributed run
"""
import io
import os
import signal

import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


def _kill():
    os.kill(os.getpid(), signal.SIGKILL)


@HOOKS.register_module(force=True)
class FaultHook(Hook):
    priority = 'LOWEST'

    def __init__(self, point, iter, rank=None):
        self.point, self.iter, self.rank = point, iter, rank

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
        if self.point != 'ckpt_write' or checkpoint['meta'].get('iter') != self.iter:
            return
        original = torch.save

        def half_save(obj, f, *args, **kwargs):
            buf = io.BytesIO()
            original(obj, buf, *args, **kwargs)
            data = buf.getvalue()
            f.write(data[:len(data) // 2])
            f.flush()
            os.fsync(f.fileno())
            _kill()

        torch.save = half_save


@HOOKS.register_module(force=True)
class DeleteFileHook(Hook):
    """Delete ``path`` when training starts: after the dataset was validated and listed."""

    def __init__(self, path):
        self.path = path

    def before_train(self, runner):
        os.remove(self.path)
