from .mixers import ARCH_ZOO, mixer_specs  # registers the token mixers first
from .arch_zoo import SCALES  # noqa: I001
from .backbone import UnifiedBackbone
from .block import (AbsolutePositionEmbedding, BottleneckBlock, ConvNeXtStyleBlock, Stage,
                    UnifiedBlock)
from .classifier_init import PretrainedClassifier
from .image_to_logits import ImageToLogits
from .neck import ExtraTransformNeck

# the mixers stm_mm ships, in the paper's order (mixer_specs() also lists those registered later)
STM_NAMES = tuple(mixer_specs())

__all__ = [
    'ARCH_ZOO', 'SCALES', 'STM_NAMES', 'UnifiedBackbone', 'UnifiedBlock',
    'ConvNeXtStyleBlock', 'BottleneckBlock', 'Stage', 'AbsolutePositionEmbedding',
    'ExtraTransformNeck', 'PretrainedClassifier', 'ImageToLogits'
]
