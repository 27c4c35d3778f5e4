import os
import os.path as osp
import shutil
import sys

import pytest
import torch

from .skip_policy import SkipPolicy

# Without a GPU the Triton kernels run under Triton's CPU interpreter, which must be switched on
# before any kernel module is imported (stm_mm.ops.triton).
if not torch.cuda.is_available():
    os.environ.setdefault('TRITON_INTERPRET', '1')

# An xdist worker gets its share of the cores (`make test` runs two workers on two cores), and so
# do the processes its tests start (OMP_NUM_THREADS is inherited); more threads than cores make
# OpenMP's barriers spin against the other worker. An OMP_NUM_THREADS already set is kept.
if 'PYTEST_XDIST_WORKER_COUNT' in os.environ:
    _share = (os.cpu_count() or 1) // int(os.environ['PYTEST_XDIST_WORKER_COUNT'])
    os.environ.setdefault('OMP_NUM_THREADS', str(max(1, _share)))
    torch.set_num_threads(int(os.environ['OMP_NUM_THREADS']))


def pytest_configure(config):
    config.pluginmanager.register(SkipPolicy(), 'stm_mm_skip_policy')
    from mmengine.registry import DefaultScope
    _SESSION_SCOPES.update(DefaultScope._instance_dict)


_SESSION_SCOPES = {}  # MMEngine's default scopes when the session started (pytest_configure)


@pytest.hookimpl(trylast=True)  # after -m/-k deselected
def pytest_collection_modifyitems(session, config, items):
    """The end-to-end (`slow`) tests first, dealt to the workers' shares: the long ones start
    early on every worker and the workers finish together. Start this process's fork server
    (tests/helpers/fork_python.py) while the first tests run, when the collected tests start
    command-line runs through it (its imports would otherwise delay the first such test)."""
    items[:] = _deal_slow_first(items, int(os.environ.get('PYTEST_XDIST_WORKER_COUNT', 1)))
    from .helpers import fork_python, tiny_training
    starters = {id(fork_python.python), id(tiny_training.run_train)}
    modules = {item.module for item in items if getattr(item, 'module', None) is not None}
    if any(id(value) in starters for module in modules for value in vars(module).values()):
        fork_python.python()


def _deal_slow_first(items, workers):
    """``items`` reordered for pytest-xdist's worksteal scheduling, which gives worker ``k`` of
    ``n`` the next ``len(remaining) // (n - k)`` items: the slow tests dealt in turn to the front
    of each worker's share, the other tests after them, in file order."""
    slow = [item for item in items if item.get_closest_marker('slow')]
    rest = [item for item in items if not item.get_closest_marker('slow')]
    dealt, remaining = [], len(items)
    for k in range(workers):
        share = remaining // (workers - k)
        remaining -= share
        own = slow[k::workers]
        dealt += own + rest[:max(0, share - len(own))]
        rest = rest[max(0, share - len(own)):]
    return dealt + rest


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _one_thread_and_restore():
    """Every test computes with one intra-op thread (tiny tensors: as fast on an idle machine,
    far faster on a busy one, and compared runs need the same thread count, which changes float
    sums); the thread count and the switches a deterministic run sets are put back after it."""
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)
    torch.backends.cudnn.deterministic = False


@pytest.fixture(autouse=True)
def _restore_default_scope():
    """Every test starts and ends with MMEngine's default scopes as the session started: a
    Runner (its own default is 'mmengine'), mmdet's register_all_modules or init_default_scope
    would otherwise leave their scope current for every later test, and builds would look in the
    wrong registry. Both ends, because a module or session fixture (made before this) may have
    left one too: which tests follow it on a worker depends on the scheduling."""
    from mmengine.registry import DefaultScope
    DefaultScope._instance_dict.clear()
    DefaultScope._instance_dict.update(_SESSION_SCOPES)
    yield
    DefaultScope._instance_dict.clear()
    DefaultScope._instance_dict.update(_SESSION_SCOPES)


@pytest.fixture(scope='session')
def meta_model():
    """``meta_model(config_path)``: the config's model (its data_preprocessor added, as the Runner
    does) built once per session on the meta device (no memory, no initialisation), shared by
    the tests that count or group the parameters of the 20 models."""
    from mmengine.config import Config
    from mmpretrain.registry import MODELS
    built = {}

    def build(path):
        if path not in built:
            cfg = Config.fromfile(path)
            model = cfg.model.copy()
            if 'data_preprocessor' in cfg:
                model.setdefault('data_preprocessor', cfg.data_preprocessor)
            with torch.device('meta'):
                built[path] = MODELS.build(model)
        return built[path]
    return build


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    """Forget what torch.compile saw in earlier tests: Dynamo recompiles a function it met at
    other shapes with dynamic shapes, which made a later small compile test take ~19 minutes
    in Inductor's symbolic simplification instead of ~1."""
    yield
    if 'torch._dynamo' in sys.modules:
        torch._dynamo.reset()


def _digits(tmp_path_factory, name, per_class):
    from stm_mm.datasets import write_digits_imagefolder
    root = str(tmp_path_factory.mktemp(name))
    write_digits_imagefolder(root, size=32, per_class_limit=per_class)
    return root


@pytest.fixture(scope='session')
def tiny_digits(tmp_path_factory):
    """A tiny image folder written by the digits converter: 2 images per class and split."""
    return _digits(tmp_path_factory, 'tiny_digits', 2)


@pytest.fixture(scope='session')
def one_digit_per_class(tmp_path_factory):
    """The smallest image folder: 1 image per class and split (one batch of 10)."""
    return _digits(tmp_path_factory, 'one_digit_per_class', 1)


@pytest.fixture(scope='session')
def image_folder(tmp_path_factory):
    """A tiny random image folder for the training-fault tests (helpers/tiny_training.py)."""
    from .helpers.tiny_training import write_image_folder
    return write_image_folder(str(tmp_path_factory.mktemp('rel_images')))


@pytest.fixture(scope='session')
def reference_run(tmp_path_factory, image_folder):
    """An uninterrupted 6-iteration run (validation every 2, checkpoints at 2, 4, 6 kept)."""
    from stm_mm.engine import build_runner

    from .helpers.tiny_training import tiny_cfg
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
