"""Kill a run at any moment, resume, and end with the same weights as an uninterrupted run.

The killed runs are forked children of the test process (a real SIGKILL of a real training
process, without paying for the imports again); one test goes through tools/train.py twice.
"""
import glob
import os
import os.path as osp
import signal

import pytest

from stm_mm.checkpoint_io import load_checkpoint
from stm_mm.engine import apply_cli_options, build_runner
from stm_mm.errors import CheckpointError

from ..helpers import faults  # noqa: F401  (registers FaultHook)

from ..helpers.tiny_training import (assert_same_weights, checkpoints, dump_cfg, forked, log_text, run_train,
                     tiny_cfg, weights)


def _interrupted(image_folder, work_dir, point, at, **kw):
    cfg = tiny_cfg(image_folder, work_dir, val_interval=2, log_level='WARNING',
                   custom_hooks=[dict(type='FaultHook', point=point, iter=at)], **kw)
    how = forked(lambda: build_runner(cfg).train())
    assert how == ('signal', signal.SIGKILL), f'the run was not killed: {how}'


def _resume(image_folder, work_dir, resume='auto', **kw):
    cfg = tiny_cfg(image_folder, work_dir, val_interval=2, log_level='INFO', **kw)
    runner = build_runner(apply_cli_options(cfg, resume=resume))
    runner.train()
    return runner


def _pointer(work_dir):
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return osp.basename(f.read().strip())


def test_kill_mid_iteration(image_folder, reference_run, tmp_path):
    work_dir = str(tmp_path / 'w')
    _interrupted(image_folder, work_dir, 'train_iter', 5)
    assert checkpoints(work_dir) == ['iter_4.pth'] and _pointer(work_dir) == 'iter_4.pth'
    runner = _resume(image_folder, work_dir)
    assert 'resumed epoch: 0, iter: 4' in log_text(work_dir)
    assert runner.iter == 6
    assert_same_weights(weights(osp.join(reference_run, 'iter_6.pth')),
                        weights(osp.join(work_dir, 'iter_6.pth')))


def test_kill_mid_evaluation(image_folder, reference_run, tmp_path):
    work_dir = str(tmp_path / 'w')
    _interrupted(image_folder, work_dir, 'val', 4)
    assert checkpoints(work_dir) == ['iter_4.pth']
    _resume(image_folder, work_dir)
    assert_same_weights(weights(osp.join(reference_run, 'iter_6.pth')),
                        weights(osp.join(work_dir, 'iter_6.pth')))


def test_kill_mid_checkpoint_write(image_folder, reference_run, tmp_path):
    """max_keep_ckpts=1: MMEngine deletes iter_2.pth before writing iter_4.pth, so a crash in
    the write would leave no checkpoint; here iter_2.pth survives and the partial file is
    neither named iter_4.pth nor picked for resuming."""
    work_dir = str(tmp_path / 'w')
    _interrupted(image_folder, work_dir, 'ckpt_write', 4, max_keep_ckpts=1)
    assert checkpoints(work_dir) == ['iter_2.pth'] and _pointer(work_dir) == 'iter_2.pth'
    partial = glob.glob(osp.join(work_dir, '.iter_4.pth.*.partial'))
    assert len(partial) == 1 and os.path.getsize(partial[0]) > 0
    load_checkpoint(osp.join(work_dir, 'iter_2.pth'))  # complete
    _resume(image_folder, work_dir, max_keep_ckpts=1)
    log = log_text(work_dir)
    assert 'resumed epoch: 0, iter: 2' in log
    assert 'Removed 1 partial checkpoint file(s)' in log
    assert not glob.glob(osp.join(work_dir, '*.partial'))
    assert checkpoints(work_dir) == ['iter_6.pth']  # max_keep_ckpts=1 still honoured
    assert_same_weights(weights(osp.join(reference_run, 'iter_6.pth')),
                        weights(osp.join(work_dir, 'iter_6.pth')))


def test_truncated_latest_checkpoint_falls_back(image_folder, reference_run, copy_of_reference):
    work_dir = copy_of_reference
    latest = osp.join(work_dir, 'iter_6.pth')
    size = os.path.getsize(latest)
    with open(latest, 'r+b') as f:
        f.truncate(size // 2)
    _resume(image_folder, work_dir, max_keep_ckpts=3)
    log = log_text(work_dir)
    assert f'Auto-resume skips {latest}: checkpoint {latest} cannot be read' in log
    assert 'truncated or corrupt' in log
    assert f'Auto-resume falls back to {osp.join(work_dir, "iter_4.pth")}' in log
    assert 'resumed epoch: 0, iter: 4' in log
    # iterations 5 and 6 trained again, identically
    assert_same_weights(weights(osp.join(reference_run, 'iter_6.pth')), weights(latest))


def test_empty_pointer_uses_newest_checkpoint(image_folder, copy_of_reference):
    """MMEngine writes last_checkpoint with open('w'): a crash there leaves it empty."""
    work_dir = copy_of_reference
    open(osp.join(work_dir, 'last_checkpoint'), 'w').close()
    runner = _resume(image_folder, work_dir, max_iters=8, max_keep_ckpts=3)
    log = log_text(work_dir)
    assert 'last_checkpoint is empty' in log and 'resumed epoch: 0, iter: 6' in log
    assert runner.iter == 8 and _pointer(work_dir) == 'iter_8.pth'


def test_all_checkpoints_corrupt(image_folder, copy_of_reference):
    work_dir = copy_of_reference
    for path in glob.glob(osp.join(work_dir, 'iter_*.pth')):
        with open(path, 'wb') as f:
            f.write(b'PK\x03\x04 not really a zip')
    with pytest.raises(CheckpointError, match=r'no loadable checkpoint in .*\(all 3 are '
                       'truncated or corrupt'):
        _resume(image_folder, work_dir, max_keep_ckpts=3)


def test_explicit_resume_of_truncated_file(image_folder, copy_of_reference):
    path = osp.join(copy_of_reference, 'iter_4.pth')
    with open(path, 'r+b') as f:
        f.truncate(1000)
    with pytest.raises(CheckpointError) as info:
        _resume(image_folder, copy_of_reference, resume=path)
    message = str(info.value)
    assert message.startswith(f'checkpoint {path} cannot be read (1000 bytes): it is truncated '
                              'or corrupt')
    assert '--resume without a path' in message


def test_resume_without_any_checkpoint_starts_from_scratch(image_folder, tmp_path):
    work_dir = str(tmp_path / 'w')
    runner = _resume(image_folder, work_dir, max_iters=2)
    assert runner.iter == 2 and 'training starts from scratch' in log_text(work_dir)


@pytest.mark.slow
def test_cli_kill_and_resume(image_folder, reference_run, tmp_path):
    """tools/train.py killed by SIGKILL before iteration 3, then `tools/train.py --resume`."""
    work_dir = str(tmp_path / 'w')
    env = {'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1'}
    killed = dump_cfg(tiny_cfg(image_folder, work_dir, val_interval=2,
                               custom_hooks=[dict(type='FaultHook', point='train_iter',
                                                  iter=3)]),
                      str(tmp_path / 'killed.py'))
    proc = run_train([killed], env=env)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert checkpoints(work_dir) == ['iter_2.pth']
    config = dump_cfg(tiny_cfg(image_folder, work_dir, val_interval=2),
                      str(tmp_path / 'resume.py'))
    proc = run_train([config, '--resume'], env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'resumed epoch: 0, iter: 2' in log_text(work_dir)
    assert_same_weights(weights(osp.join(reference_run, 'iter_6.pth')),
                        weights(osp.join(work_dir, 'iter_6.pth')))


def test_resume_from_another_models_checkpoint(image_folder, reference_run, tmp_path):
    path = osp.join(reference_run, 'iter_2.pth')
    with pytest.raises(CheckpointError, match=r'does not fit the model: 2 mis-shaped: '
                       r'head\.fc\.bias: checkpoint \(2,\) vs model \(3,\)'):
        _resume(image_folder, str(tmp_path / 'w'), resume=path,
                model=dict(head=dict(num_classes=3)))


def test_stale_checkpoint_of_a_kill_before_deletion_is_removed(image_folder, reference_run,
                                                                tmp_path):
    """Killed after iter_4.pth and the pointer are written but before iter_2.pth is deleted
    (max_keep_ckpts=1): the resumed run's next save removes iter_2.pth, with a log line."""
    work_dir = str(tmp_path / 'w')
    _interrupted(image_folder, work_dir, 'ckpt_delete', 4, max_keep_ckpts=1)
    assert checkpoints(work_dir) == ['iter_2.pth', 'iter_4.pth']
    assert _pointer(work_dir) == 'iter_4.pth'
    _resume(image_folder, work_dir, max_keep_ckpts=1)
    assert checkpoints(work_dir) == ['iter_6.pth']
    assert 'Removed 1 stale checkpoint(s) beyond max_keep_ckpts=1, left by a run killed ' \
        'before it deleted them: iter_2.pth' in log_text(work_dir)
    assert_same_weights(weights(osp.join(reference_run, 'iter_6.pth')),
                        weights(osp.join(work_dir, 'iter_6.pth')))


@pytest.mark.parametrize('short', [False, True], ids=['ENOSPC', 'short-write'])
def test_disk_full_during_save_names_the_file_and_the_intact_checkpoint(image_folder, tmp_path,
                                                                         short):
    work_dir = str(tmp_path / 'w')
    cfg = tiny_cfg(image_folder, work_dir, log_level='WARNING', custom_hooks=[
        dict(type='FaultHook', point='disk_full', iter=4, short=short)])
    with pytest.raises(CheckpointError) as info:
        build_runner(cfg).train()
    kept = osp.join(work_dir, 'iter_2.pth')
    assert str(info.value).startswith(
        f'the disk is full: writing checkpoint {osp.join(work_dir, "iter_4.pth")} failed [')
    assert (f'the partial file was deleted and {kept} is intact (last_checkpoint points to it); '
            'fix: free space on that disk') in str(info.value)
    assert checkpoints(work_dir) == ['iter_2.pth'] and _pointer(work_dir) == 'iter_2.pth'
    assert not glob.glob(osp.join(work_dir, '.*.partial'))
    load_checkpoint(kept)
