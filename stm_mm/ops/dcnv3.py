"""DCNv3 entry point: one function that every caller uses.

At present it runs the pure-PyTorch core (:mod:`stm_mm.ops.dcnv3_ref`); the compiled kernels
(``stm_mm._ext``) plug in here.
"""
from .dcnv3_ref import dcnv3_reference


def dcnv3(input, offset, mask, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h,
          dilation_w, group, group_channels, offset_scale):
    """DCNv3 core; arguments and shapes as :func:`stm_mm.ops.dcnv3_ref.dcnv3_reference`."""
    return dcnv3_reference(input, offset, mask, kernel_h, kernel_w, stride_h, stride_w, pad_h,
                           pad_w, dilation_h, dilation_w, group, group_channels, offset_scale)
