import copy

import pytest


@pytest.fixture(autouse=True)
def _restore_default_scope():
    """Leave MMEngine's current default scope as it was (a Runner or mmdet's
    register_all_modules would otherwise leave 'mmdet' current for every later test, and
    mmpretrain builds in other test modules would then look in the wrong registry)."""
    from mmengine.registry import DefaultScope
    saved = copy.copy(DefaultScope._instance_dict)
    yield
    DefaultScope._instance_dict.clear()
    DefaultScope._instance_dict.update(saved)
