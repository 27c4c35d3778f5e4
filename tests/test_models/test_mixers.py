"""Each mixer against a loop-based implementation written from the spec."""
import pytest
import torch
from torch.testing import assert_close

from stm_mm.models.mixers import (DCNv3Mixer, DepthwiseConvMixer, HaloAttention,
                                  ShiftedWindowAttention, SpatialReductionAttention)
from stm_mm.models.utils import use_reference_attention
from stm_mm.ops import dcnv3_reference

from .naive import dcnv3_naive, halo_naive, swin_naive


def _randomise(module):
    for p in module.parameters():
        torch.nn.init.normal_(p, std=0.3)
    return module


@pytest.mark.parametrize('size', [(14, 14), (7, 7), (10, 17)])
def test_halo_matches_spec(size):
    m = _randomise(HaloAttention(16, 2)).double()
    x = torch.randn(2, *size, 16, dtype=torch.float64)
    expected = halo_naive(m, x)
    assert_close(m(x), expected)
    with use_reference_attention():
        assert_close(m(x), expected)


@pytest.mark.parametrize('options', [dict(halo_size=1), dict(query_position='top_left'),
                                     dict(switch=True)])
def test_halo_variants_match_spec(options):
    """U-HaloNet-1px, -Shift and (odd block of) -Switch."""
    m = _randomise(HaloAttention(16, 2, block_index=1, **options)).double()
    expected_window = dict(halo_size=9, query_position=13, switch=7)[next(iter(options))]
    assert m.window_size == expected_window
    x = torch.randn(1, 10, 15, 16, dtype=torch.float64)
    assert_close(m(x), halo_naive(m, x))


def test_halo_unused_table_rows():
    """Rows 0..b-2 of the relative tables are never used (spec 3.1, step 4)."""
    m = HaloAttention(16, 2)
    m(torch.randn(1, 14, 14, 16)).sum().backward()
    assert m.height_rel.grad[:6].abs().sum() == 0
    assert (m.height_rel.grad[6:].abs().sum(-1) > 0).all()


@pytest.mark.parametrize('size,block_index', [((14, 14), 0), ((14, 14), 1), ((7, 7), 1),
                                              ((9, 16), 1), ((9, 16), 0)])
@pytest.mark.parametrize('shift_single_window', [False, True])
def test_swin_matches_spec(size, block_index, shift_single_window):
    m = _randomise(ShiftedWindowAttention(16, 2, block_index=block_index,
                                          shift_single_window=shift_single_window)).double()
    x = torch.randn(2, *size, 16, dtype=torch.float64)
    shift = m.shift_for(*size)
    if block_index == 0:
        assert shift == 0
    elif size == (7, 7):
        assert shift == (3 if shift_single_window else 0)
    else:
        assert shift == 3
    expected = swin_naive(m, x, shift)
    assert_close(m(x), expected)
    with use_reference_attention():
        assert_close(m(x), expected)


@pytest.mark.parametrize('stage_index,size', [(0, (16, 16)), (1, (13, 9)), (3, (5, 6))])
def test_pvt_matches_spec(stage_index, size):
    m = _randomise(SpatialReductionAttention(16, 2, stage_index=stage_index)).double()
    x = torch.randn(2, *size, 16, dtype=torch.float64)
    B, H, W, C = x.shape
    R = m.sr_ratio
    q = (x @ m.q.weight.T + m.q.bias).reshape(B, H * W, 2, 8)
    src = x
    if R > 1:
        src = torch.nn.functional.conv2d(x.permute(0, 3, 1, 2), m.sr.weight, m.sr.bias, stride=R)
        src = m.sr_norm(src.permute(0, 2, 3, 1))
    kv = src.reshape(B, -1, C) @ m.kv.weight.T + m.kv.bias
    k, v = kv[..., :C].reshape(B, -1, 2, 8), kv[..., C:].reshape(B, -1, 2, 8)
    attn = (torch.einsum('bqnd,bknd->bnqk', q, k) * 8**-0.5).softmax(-1)
    out = torch.einsum('bnqk,bknd->bqnd', attn, v).reshape(B, H, W, C)
    assert_close(m(x), out @ m.proj.weight.T + m.proj.bias)


def test_dwconv_is_three_convs():
    m = _randomise(DepthwiseConvMixer(8)).double()
    x = torch.randn(2, 9, 11, 8, dtype=torch.float64)
    nchw = x.permute(0, 3, 1, 2)
    y = torch.nn.functional.conv2d(nchw, m.input_proj.weight[:, :, None, None], m.input_proj.bias)
    y = torch.nn.functional.conv2d(y, m.dwconv.weight, m.dwconv.bias, padding=3, groups=8)
    y = torch.nn.functional.conv2d(y, m.output_proj.weight[:, :, None, None], m.output_proj.bias)
    assert_close(m(x), y.permute(0, 2, 3, 1))


@pytest.mark.parametrize('k,stride,pad,dil,group,scale', [(3, 1, 1, 1, 2, 1.0),
                                                          (3, 2, 1, 2, 1, 0.5),
                                                          (2, 1, 0, 1, 2, 2.0)])
def test_dcnv3_reference_matches_loops(k, stride, pad, dil, group, scale):
    B, H, W, Cg = 1, 5, 6, 3
    value = torch.randn(B, H, W, group * Cg, dtype=torch.float64)
    Ho = (H + 2 * pad - (dil * (k - 1) + 1)) // stride + 1
    Wo = (W + 2 * pad - (dil * (k - 1) + 1)) // stride + 1
    offset = torch.randn(B, Ho, Wo, group * k * k * 2, dtype=torch.float64) * 2
    mask = torch.rand(B, Ho, Wo, group * k * k, dtype=torch.float64)
    out = dcnv3_reference(value, offset, mask, k, k, stride, stride, pad, pad, dil, dil, group,
                          Cg, scale)
    assert_close(out, dcnv3_naive(value, offset, mask, k, stride, pad, dil, group, scale))


def test_dcnv3_mixer_zero_offsets_is_softmax_weighted_3x3():
    """With zero offsets and equal logits, DCNv3 averages the 3x3 neighbourhood (zero padded)."""
    m = DCNv3Mixer(8, 2)
    for layer in (m.sampling_offsets, m.attention_weights):
        torch.nn.init.zeros_(layer.weight)
        torch.nn.init.zeros_(layer.bias)
    x = torch.randn(1, 6, 7, 8)
    v = m.value_proj(x).permute(0, 3, 1, 2)
    avg = torch.nn.functional.avg_pool2d(v, 3, 1, 1, count_include_pad=True)
    expected = m.output_proj(avg.permute(0, 2, 3, 1))
    assert_close(m(x), expected, rtol=1e-5, atol=1e-5)


def test_dcnv3_mixer_one_gemm_equals_its_two_projections():
    """The offset and modulation projections run as one GEMM; the result is that of the
    authors' two Linears (offsets, then softmax over the points of the logits)."""
    m = _randomise(DCNv3Mixer(8, 2, impl='pytorch')).double()
    x = torch.randn(2, 5, 6, 8, dtype=torch.float64)
    f = m.offset_act(m.offset_norm(m.offset_dwconv(x)))
    mask = m.attention_weights(f).view(2, 5, 6, 2, 9).softmax(-1).view(2, 5, 6, 18)
    out = dcnv3_reference(m.value_proj(x), m.sampling_offsets(f), mask, 3, 3, 1, 1, 1, 1, 1, 1,
                          2, 4, 1.0)
    assert_close(m(x), m.output_proj(out))
