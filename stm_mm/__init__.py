"""stm_mm: spatial token mixers on equal footing, for MMEngine, mmpretrain and mmdet.

Importing the package registers ``UnifiedBackbone`` and ``ExtraTransformNeck`` in MMEngine's
``MODELS`` registry (reachable from mmpretrain and mmdet configs through
``custom_imports=dict(imports=['stm_mm'])``), the five token mixers in ``TOKEN_MIXERS``,
what the configs use (the ``TimmRandomErasing`` and ``SafeLoadImageFromFile`` transforms, the
``SkipUnreadable`` dataset wrapper, the ``DualEvalEMAHook``); it makes MMEngine read checkpoints
through :mod:`stm_mm.checkpoint_io` (weights only, never code), accepting the authors' released
files, and registers the model zoo with mmpretrain's ``ModelHub`` (:mod:`stm_mm.zoo`).
"""
from .checkpoint_io import install_mmengine_loader, register_allowed_globals
from .datasets import SafeLoadImageFromFile, SkipUnreadable, TimmRandomErasing
from .engine import DualEvalEMAHook
from .models import ExtraTransformNeck, UnifiedBackbone
from .registry import MODELS, TOKEN_MIXERS
from .zoo import register_checkpoint_loaders, register_model_zoo

__version__ = '0.1.0'

register_allowed_globals()
install_mmengine_loader()
register_checkpoint_loaders()  # wraps the safe loaders installed above: keep this order
register_model_zoo()

__all__ = ['UnifiedBackbone', 'ExtraTransformNeck', 'MODELS', 'TOKEN_MIXERS', 'TimmRandomErasing',
           'SafeLoadImageFromFile', 'SkipUnreadable', 'DualEvalEMAHook', '__version__']
