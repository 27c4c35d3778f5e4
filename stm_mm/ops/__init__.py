from .dcnv3 import dcnv3
from .dcnv3_ref import dcnv3_reference

__all__ = ['dcnv3', 'dcnv3_reference']
