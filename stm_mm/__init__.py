"""stm_mm: spatial token mixers on equal footing, for MMEngine, mmpretrain and mmdet.

Importing the package registers ``UnifiedBackbone`` and ``ExtraTransformNeck`` in MMEngine's
``MODELS`` registry (reachable from mmpretrain and mmdet configs through
``custom_imports=dict(imports=['stm_mm'])``) and the five token mixers in ``TOKEN_MIXERS``; it
also registers the model zoo with mmpretrain's ``ModelHub`` and MMEngine checkpoint loaders that
accept the authors' released files (:mod:`stm_mm.zoo`).
"""
from .checkpoint_compat import allow_mmengine_checkpoints
from .models import ExtraTransformNeck, UnifiedBackbone
from .registry import MODELS, TOKEN_MIXERS
from .zoo import register_checkpoint_loaders, register_model_zoo

__version__ = '0.1.0'

allow_mmengine_checkpoints()
register_checkpoint_loaders()
register_model_zoo()

__all__ = ['UnifiedBackbone', 'ExtraTransformNeck', 'MODELS', 'TOKEN_MIXERS', '__version__']
