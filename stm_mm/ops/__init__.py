from .dcnv3 import DCNv3FallbackWarning, dcnv3, dcnv3_available, dcnv3_softmax
from .dcnv3_func import dcnv3_compiled
from .dcnv3_ref import dcnv3_reference

__all__ = [
    'dcnv3', 'dcnv3_softmax', 'dcnv3_reference', 'dcnv3_available', 'dcnv3_compiled',
    'DCNv3FallbackWarning'
]
