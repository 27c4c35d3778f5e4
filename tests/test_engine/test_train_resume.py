"""A micro model of every STM trains through the real Runner (tools/train.py's logic), writes a
checkpoint, and `--resume` continues from it at the same iteration with the same optimizer state.
"""
import copy
import os.path as osp
import uuid

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook

from stm_mm.engine import apply_cli_options, build_runner

from .. import ROOT
from ..helpers.digits import data_options

STMS = ('halo', 'pvt', 'swin', 'dwconv', 'dcnv3')
BATCH = 10  # the whole tiny train split (1 image per class): every iteration sees it all


def _cfg(stm, data_root, work_dir, max_epochs, resume=None):
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'cls', 'digits', f'u_{stm}_micro_digits.py'))
    options = data_options(
        data_root, BATCH, **{
            # deterministic input: fixed order, no random augmentation
            'train_dataloader.sampler.shuffle': False,
            'train_dataloader.drop_last': False,
            'train_dataloader.dataset.pipeline': copy.deepcopy(cfg.test_pipeline),
            'train_cfg.max_epochs': max_epochs,
            'default_hooks.checkpoint.interval': 3,
            'default_hooks.logger.interval': 1,
            'experiment_name': f'test_cls_{stm}_{uuid.uuid4().hex[:8]}',
        })
    return apply_cli_options(cfg, work_dir=work_dir, resume=resume, no_validate=True,
                             cfg_options=options)


class _Snapshot(Hook):
    """Records the runner's state when training starts (i.e. right after resuming)."""
    priority = 'LOWEST'

    def before_train(self, runner):
        self.iter, self.epoch = runner.iter, runner.epoch
        self.optim_state = copy.deepcopy(runner.optim_wrapper.state_dict())
        self.lr = runner.optim_wrapper.get_lr()['lr']
        self.weights = {k: v.clone() for k, v in runner.model.state_dict().items()}


def _assert_same(a, b, path='optimizer'):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), path
    elif isinstance(a, dict):
        assert set(a) == set(b), path
        for key in a:
            _assert_same(a[key], b[key], f'{path}.{key}')
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f'{path}[{i}]')
    else:
        assert a == b, (path, a, b)


@pytest.mark.parametrize('stm', STMS)
def test_train_checkpoint_resume(stm, one_digit_per_class, tmp_path):
    data, work_dir = one_digit_per_class, str(tmp_path / 'work')

    # 6 iterations (1 per epoch) on one fixed batch
    runner = build_runner(_cfg(stm, data, work_dir, max_epochs=6))
    runner.train()
    losses = np.asarray(runner.message_hub.get_scalar('train/loss').data[0])
    assert len(losses) == 6 and np.isfinite(losses).all()
    # the first iteration runs at the warm-up lr (1% of the base), so compare the first two
    # with the last two: the model fits the fixed batch
    assert losses[-2:].mean() < losses[:2].mean() - 0.1, losses
    assert runner.iter == 6 and runner.epoch == 6
    checkpoint = osp.join(work_dir, 'epoch_6.pth')
    assert osp.isfile(checkpoint)
    optim_state = copy.deepcopy(runner.optim_wrapper.state_dict())
    assert optim_state['state'], 'AdamW has moments after training'
    lr = runner.optim_wrapper.get_lr()['lr']
    weights = {k: v.clone() for k, v in runner.model.state_dict().items()}
    del runner

    # --resume CKPT: same iteration, optimizer moments, lr (scheduler state) and weights
    runner = build_runner(_cfg(stm, data, work_dir, max_epochs=8, resume=checkpoint))
    snapshot = _Snapshot()
    runner.register_hook(snapshot)
    runner.train()
    assert (snapshot.iter, snapshot.epoch) == (6, 6)
    _assert_same(optim_state, snapshot.optim_state)
    assert snapshot.lr == pytest.approx(lr, rel=0, abs=0)
    _assert_same(weights, snapshot.weights, 'weights')
    # ... and it carries on
    assert runner.iter == 8
    assert osp.isfile(osp.join(work_dir, 'epoch_8.pth'))
    resumed_losses = runner.message_hub.get_scalar('train/loss').data[0]
    assert np.isfinite(resumed_losses).all()
