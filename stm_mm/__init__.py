"""stm_mm: spatial token mixers on equal footing, for MMEngine, mmpretrain and mmdet.

Importing the package registers ``UnifiedBackbone`` and ``ExtraTransformNeck`` in MMEngine's
``MODELS`` registry (reachable from mmpretrain and mmdet configs through
``custom_imports=dict(imports=['stm_mm'])``) and the five token mixers in ``TOKEN_MIXERS``.
"""
from . import datasets  # noqa: F401  (registers SafeLoadImageFromFile, SkipUnreadable)
from .checkpoint_compat import allow_mmengine_checkpoints
from .models import ExtraTransformNeck, UnifiedBackbone
from .registry import MODELS, TOKEN_MIXERS

__version__ = '0.1.0'

allow_mmengine_checkpoints()

__all__ = ['UnifiedBackbone', 'ExtraTransformNeck', 'MODELS', 'TOKEN_MIXERS', '__version__']
