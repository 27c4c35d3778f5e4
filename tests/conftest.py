import copy
import os
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


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _restore_default_scope():
    """Leave MMEngine's current default scope as it was: a Runner, mmdet's register_all_modules
    or init_default_scope would otherwise leave 'mmdet' or 'mmpretrain' current for every later
    test, and builds in other test modules would then look in the wrong registry."""
    from mmengine.registry import DefaultScope
    saved = copy.copy(DefaultScope._instance_dict)
    yield
    DefaultScope._instance_dict.clear()
    DefaultScope._instance_dict.update(saved)


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
