"""Kill-and-resume with data-loader workers (2 workers drawing random crops and flips),
persistent or not, iteration- and epoch-based: the final weights equal the uninterrupted run's.

Before per-sample seeds (stm_mm/datasets/sample_seeds.py) a resumed run's fresh workers started
their random streams afresh, while the uninterrupted run's persistent workers carried theirs on,
and persistent loaders drew their workers' base seed from the global RNG once per run only.
``tools/misc/resume_sweep.py`` repeats this at random kill points.
"""
import os.path as osp
import signal

import pytest

from stm_mm.engine import apply_cli_options, build_runner

from ..helpers import faults  # noqa: F401  (registers FaultHook)

from ..helpers.tiny_training import assert_same_weights, forked, log_text, weights, workers_cfg

CASES = {  # (loop, persistent workers): (kill before iteration, resumed from, final checkpoint)
    ('epoch', True): (10, 'epoch: 2, iter: 8', 'epoch_3.pth'),
    ('iter', False): (7, 'epoch: 0, iter: 6', 'iter_12.pth'),
}


def _run(image_folder, work_dir, loop, persistent, **kw):
    cfg = workers_cfg(image_folder, work_dir, loop, persistent, log_level='WARNING', **kw)
    return build_runner(cfg)


@pytest.mark.parametrize('loop,persistent', [  # the second one is in the slow suite only
    ('epoch', True), pytest.param('iter', False, marks=pytest.mark.slow)])
def test_kill_and_resume_with_workers(image_folder, tmp_path, loop, persistent):
    kill_at, resumed, final = CASES[loop, persistent]
    reference = str(tmp_path / 'reference')
    assert forked(lambda: _run(image_folder, reference, loop, persistent).train()) == ('exit', 0)

    work_dir = str(tmp_path / 'w')
    hook = dict(type='FaultHook', point='train_iter', iter=kill_at)
    how = forked(lambda: _run(image_folder, work_dir, loop, persistent,
                              custom_hooks=[hook]).train())
    assert how == ('signal', signal.SIGKILL)
    cfg = workers_cfg(image_folder, work_dir, loop, persistent, log_level='INFO')
    build_runner(apply_cli_options(cfg, resume='auto')).train()
    assert f'resumed {resumed}' in log_text(work_dir)
    assert_same_weights(weights(osp.join(reference, final)), weights(osp.join(work_dir, final)))
