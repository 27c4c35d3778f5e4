import os.path as osp
import shutil

import pytest
import torch

from .common import tiny_cfg, write_image_folder


def pytest_itemcollected(item):
    """The 2-process torchrun jobs of test_dist_errors.py are `serial` (`make test` runs them
    after the parallel pass, alone)."""
    if item.path.name == 'test_dist_errors.py':
        item.add_marker(pytest.mark.serial)


@pytest.fixture(autouse=True)
def _one_thread_and_restore():
    """All compared runs use one intra-op thread (the thread count changes float sums), and the
    global switches a deterministic run sets are put back for the other test packages."""
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)
    torch.backends.cudnn.deterministic = False


@pytest.fixture(scope='session')
def image_folder(tmp_path_factory):
    return write_image_folder(str(tmp_path_factory.mktemp('rel_images')))


@pytest.fixture(scope='session')
def reference_run(tmp_path_factory, image_folder):
    """An uninterrupted 6-iteration run (validation every 2, checkpoints at 2, 4, 6 kept)."""
    from stm_mm.engine import build_runner
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        work_dir = str(tmp_path_factory.mktemp('rel_reference'))
        build_runner(tiny_cfg(image_folder, work_dir, val_interval=2, max_keep_ckpts=3,
                              log_level='WARNING')).train()
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(False)
    for name in ('iter_2.pth', 'iter_4.pth', 'iter_6.pth'):
        assert osp.isfile(osp.join(work_dir, name))
    return work_dir


@pytest.fixture
def copy_of_reference(reference_run, tmp_path):
    """A copy of the reference work dir, with last_checkpoint pointing into the copy."""
    work_dir = str(tmp_path / 'copy')
    shutil.copytree(reference_run, work_dir)
    with open(osp.join(work_dir, 'last_checkpoint'), 'w') as f:
        f.write(osp.join(work_dir, 'iter_6.pth'))
    return work_dir
