"""stm_mm: spatial token mixers on equal footing, for MMEngine, mmpretrain and mmdet."""
__version__ = '0.1.0'
