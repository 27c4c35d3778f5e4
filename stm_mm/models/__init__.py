from . import mixers  # noqa: F401  (registers the token mixers)
from .arch_zoo import ARCH_ZOO, SCALES, STM_NAMES
from .backbone import UnifiedBackbone
from .block import (AbsolutePositionEmbedding, BottleneckBlock, ConvNeXtStyleBlock, Stage,
                    UnifiedBlock)
from .classifier_init import PretrainedClassifier
from .image_to_logits import ImageToLogits
from .neck import ExtraTransformNeck

__all__ = [
    'ARCH_ZOO', 'SCALES', 'STM_NAMES', 'UnifiedBackbone', 'UnifiedBlock',
    'ConvNeXtStyleBlock', 'BottleneckBlock', 'Stage', 'AbsolutePositionEmbedding',
    'ExtraTransformNeck', 'PretrainedClassifier', 'ImageToLogits'
]
