"""stm_mm: spatial token mixers on equal footing, for MMEngine, mmpretrain and mmdet.

Importing the package only registers: ``UnifiedBackbone`` and ``ExtraTransformNeck`` in
MMEngine's ``MODELS`` registry (reachable from mmpretrain and mmdet configs through
``custom_imports=dict(imports=['stm_mm'])``), the five token mixers in ``TOKEN_MIXERS``, what
the configs use (the ``TimmRandomErasing`` and ``SafeLoadImageFromFile`` transforms, the
``SkipUnreadable`` dataset wrapper, the ``DualEvalEMAHook``), the ``'stm_mm_atomic'`` file
backend, and the model zoo with mmpretrain's ``ModelHub`` once mmpretrain is imported
(:mod:`stm_mm.zoo`). How MMEngine reads checkpoints changes only with
:func:`stm_mm.patches.install` (see there for who calls it).
"""
from .datasets import SafeLoadImageFromFile, SkipUnreadable, TimmRandomErasing
from .engine import DualEvalEMAHook
from .models import ExtraTransformNeck, UnifiedBackbone
from .registry import MODELS, TOKEN_MIXERS
from .zoo import register_model_zoo

__version__ = '0.1.0'

register_model_zoo()

__all__ = ['UnifiedBackbone', 'ExtraTransformNeck', 'MODELS', 'TOKEN_MIXERS', 'TimmRandomErasing',
           'SafeLoadImageFromFile', 'SkipUnreadable', 'DualEvalEMAHook', '__version__']
