"""A NaN/Inf loss stops training with the iteration and the loss term; the last good
checkpoint stays the newest one and no checkpoint of the broken state is written."""
import os.path as osp
from types import SimpleNamespace

import pytest
import torch

from stm_mm.engine import FiniteLossHook, build_runner
from stm_mm.errors import NonFiniteLossError

from ..helpers import faults  # noqa: F401  (registers FaultHook)
from ..helpers.tiny_training import checkpoints, tiny_cfg, weights


def _pointer(work_dir):
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def test_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(image_folder, tmp_path):
    work_dir = str(tmp_path / 'w')
    cfg = tiny_cfg(image_folder, work_dir, max_keep_ckpts=1, log_level='WARNING',
                   custom_hooks=[dict(type='FaultHook', point='nan', iter=5)])
    runner = build_runner(cfg)
    with pytest.raises(NonFiniteLossError) as info:
        runner.train()
    last = osp.join(work_dir, 'iter_4.pth')
    message = str(info.value)
    assert message.startswith('non-finite loss at iteration 5 (epoch 1): loss=nan; training '
                              f'stopped without saving this state, the last good checkpoint is '
                              f'{last} (continue with --resume)'), message
    assert 'fix: lower the learning rate' in message
    assert checkpoints(work_dir) == ['iter_4.pth'] and _pointer(work_dir) == last
    assert all(torch.isfinite(v).all() for v in weights(last).values())


def test_non_finite_weights_are_never_saved(image_folder, tmp_path):
    """Even without the hook (finite_loss=False) the NaN weights of iteration 5 do not reach
    the checkpoint of iteration 6."""
    work_dir = str(tmp_path / 'w')
    cfg = tiny_cfg(image_folder, work_dir, max_keep_ckpts=1, log_level='WARNING',
                   reliability=dict(finite_loss=False),
                   custom_hooks=[dict(type='FaultHook', point='nan', iter=5)])
    with pytest.raises(NonFiniteLossError, match=r'weights are non-finite at iteration 6 '
                       r'\(backbone\..* holds NaN/Inf\); refusing to save'):
        build_runner(cfg).train()
    assert checkpoints(work_dir) == ['iter_4.pth']
    assert _pointer(work_dir) == osp.join(work_dir, 'iter_4.pth')


@pytest.mark.parametrize('outputs, shown', [
    (dict(loss_rpn_cls=torch.tensor(0.3), loss_cls=torch.tensor(float('nan')),
          loss_bbox=torch.tensor(0.1), acc=torch.tensor(float('nan')),
          loss=torch.tensor(float('nan'))), 'loss_cls=nan, loss=nan'),
    (dict(loss_mask=torch.tensor(float('inf')), loss_cls=[torch.tensor(1.0),
                                                          torch.tensor(float('-inf'))]),
     'loss_cls=-inf, loss_mask=inf'),
])
def test_finite_loss_hook_names_the_terms(outputs, shown, tmp_path):
    runner = SimpleNamespace(iter=41, epoch=2, work_dir=str(tmp_path))
    with pytest.raises(NonFiniteLossError) as info:
        FiniteLossHook().after_train_iter(runner, 0, None, outputs)
    assert str(info.value).startswith(f'non-finite loss at iteration 42 (epoch 3): {shown}; '
                                      'training stopped without saving this state, no '
                                      'checkpoint had been written yet')


def test_finite_loss_hook_passes_finite_outputs(tmp_path):
    runner = SimpleNamespace(iter=0, epoch=0, work_dir=str(tmp_path))
    FiniteLossHook().after_train_iter(runner, 0, None, dict(loss=torch.tensor(1.5),
                                                            acc=torch.tensor(float('nan'))))


def test_nan_on_one_rank_stops_every_rank(image_folder, tmp_path):
    """Two gloo processes; rank 1's loss turns NaN. Both stop at the same iteration (neither
    waits forever in the next all-reduce) and no checkpoint of the broken state is written."""
    import os
    import signal
    import time

    from stm_mm.engine import finish_distributed, init_distributed

    work_dir = str(tmp_path / 'w')
    port = str(29400 + os.getpid() % 500)

    def child(rank):
        pid = os.fork()
        if pid:
            return pid
        code = 1
        try:
            os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE='2',
                              LOCAL_WORLD_SIZE='2', MASTER_ADDR='127.0.0.1', MASTER_PORT=port)
            cfg = tiny_cfg(image_folder, work_dir, log_level='WARNING', launcher='pytorch',
                           custom_hooks=[dict(type='FaultHook', point='nan', iter=3, rank=1)])
            init_distributed(cfg)
            try:
                build_runner(cfg).train()
                code = 0
            except NonFiniteLossError as e:
                with open(osp.join(str(tmp_path), f'rank{rank}.txt'), 'w') as f:
                    f.write(str(e))
                code = 3
            finish_distributed(barrier=False)
        finally:
            os._exit(code)

    pids = [child(0), child(1)]
    codes, deadline = {}, time.time() + 120
    while len(codes) < 2 and time.time() < deadline:
        for pid in pids:
            if pid not in codes:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    codes[pid] = os.waitstatus_to_exitcode(status)
        time.sleep(0.1)
    for pid in pids:
        if pid not in codes:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    assert [codes.get(pid) for pid in pids] == [3, 3], 'a rank hung or failed differently'
    with open(tmp_path / 'rank1.txt') as f:
        assert f.read().startswith('non-finite loss at iteration 3 (epoch 1): loss=nan')
    with open(tmp_path / 'rank0.txt') as f:
        assert f.read().startswith('non-finite loss on another rank at iteration 3')
    assert checkpoints(work_dir) == ['iter_2.pth']
