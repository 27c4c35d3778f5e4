"""stm_mm: spatial token mixers on equal footing, for MMEngine, mmpretrain and mmdet.

Importing the package registers ``UnifiedBackbone`` and ``ExtraTransformNeck`` in MMEngine's
``MODELS`` registry (reachable from mmpretrain and mmdet configs through
``custom_imports=dict(imports=['stm_mm'])``), the five token mixers in ``TOKEN_MIXERS``, and
what the ImageNet configs use: the ``TimmRandomErasing`` transform (``TRANSFORMS``) and the
``DualEvalEMAHook`` (``HOOKS``).
"""
from .checkpoint_compat import allow_mmengine_checkpoints
from .datasets import TimmRandomErasing
from .engine import DualEvalEMAHook
from .models import ExtraTransformNeck, UnifiedBackbone
from .registry import MODELS, TOKEN_MIXERS

__version__ = '0.1.0'

allow_mmengine_checkpoints()

__all__ = ['UnifiedBackbone', 'ExtraTransformNeck', 'MODELS', 'TOKEN_MIXERS', 'TimmRandomErasing',
           'DualEvalEMAHook', '__version__']
