"""The authors' MSDA kernel as a DCNv3 benchmark baseline samples exactly what DCNv3 samples:
mmcv's own PyTorch version of MSDA on :func:`msda_inputs` equals the DCNv3 reference."""
import torch
from mmcv.ops.multi_scale_deform_attn import multi_scale_deformable_attn_pytorch

from stm_mm.ops import dcnv3_reference
from stm_mm.ops.authors_msda import msda_inputs


def test_msda_inputs_sample_like_dcnv3():
    B, H, W, G, Cg = 2, 5, 7, 3, 4
    x = torch.randn(B, H, W, G * Cg, dtype=torch.float64)
    offset = torch.randn(B, H, W, G * 9 * 2, dtype=torch.float64) * 2  # points off the map too
    mask = torch.randn(B, H, W, G, 9, dtype=torch.float64).softmax(-1).flatten(-2)
    value, shapes, _, loc, weights = msda_inputs(x, offset, mask, offset_scale=0.5)
    out = multi_scale_deformable_attn_pytorch(value, shapes, loc, weights)
    expected = dcnv3_reference(x, offset, mask, 3, 3, 1, 1, 1, 1, 1, 1, G, Cg, 0.5)
    torch.testing.assert_close(out.view(B, H, W, -1), expected)
