"""Fused Swin window attention (Triton; the CPU interpreter without a GPU) against the reference.

The interpreter runs numpy per program instance: shapes are tiny (3x3 windows, head dim 4).
"""
import pytest
import torch
from torch.testing import assert_close

from stm_mm.models import UnifiedBackbone
from stm_mm.models.mixers import ShiftedWindowAttention
from stm_mm.models.utils import use_reference_attention


def _mixer(impl, dim=8, heads=2, **kwargs):
    torch.manual_seed(1)
    m = ShiftedWindowAttention(dim, heads, impl=impl, **kwargs).double()
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.5)
    return m


def _forward_and_grads(m, x, grad_out):
    x = x.clone().requires_grad_()
    out = m(x)
    return out, torch.autograd.grad(out, [x, *m.parameters()], grad_out)


@pytest.mark.parametrize('batch,size,window,block_index,single,shift', [
    (1, (6, 6), 3, 1, False, 1),  # 2 x 2 windows, shifted
    (2, (5, 7), 3, 1, False, 1),  # padded to 6 x 9, shifted
    (1, (5, 7), 3, 0, False, 0),  # padded, regular windows
    (1, (2, 3), 3, 1, False, 0),  # smaller than one window: no shift ...
    (1, (2, 3), 3, 1, True, 1),  # ... unless shift_single_window
    (1, (9, 8), 7, 1, False, 3),  # U-Swin's window (49 tokens in a 64-token tile), padded
])
def test_triton_equals_reference(batch, size, window, block_index, single, shift):
    """Forward and every gradient (input, qkv, table, proj) in float64, 2 heads."""
    kwargs = dict(window_size=window, block_index=block_index, shift_single_window=single)
    fused, reference = _mixer('triton', **kwargs), _mixer('reference', **kwargs)
    assert fused.shift_for(*size) == shift
    x, grad_out = torch.randn(2, batch, *size, 8, dtype=torch.float64)
    out, grads = _forward_and_grads(fused, x, grad_out)
    expected, expected_grads = _forward_and_grads(reference, x, grad_out)
    assert_close(out, expected)
    for grad, expected_grad in zip(grads, expected_grads):
        assert_close(grad, expected_grad)


def test_opcheck():
    from stm_mm.ops.triton.window_attention import window_attention
    qkv = torch.randn(1, 3, 3, 3 * 4, dtype=torch.float64, requires_grad=True)
    table = torch.randn(25, 1, dtype=torch.float64, requires_grad=True)
    torch.library.opcheck(window_attention, (qkv, table, 1, 3, 1, 0.5))


def test_bad_input_errors():
    from stm_mm.ops.triton.window_attention import window_attention
    with pytest.raises(ValueError, match='multiples of the window 3'):
        window_attention(torch.randn(1, 4, 3, 12), torch.randn(25, 1), 1, 3, 0, 0.5)
    with pytest.raises(ValueError, match=r'the table must be'):
        window_attention(torch.randn(1, 3, 3, 12), torch.randn(9, 1), 1, 3, 0, 0.5)


def test_triton_equals_sdpa_float32():
    """The fused kernels against the default CPU path (sdpa), forward and backward."""
    fused, sdpa = (_mixer(impl, 16, 2, window_size=3, block_index=1).float()
                   for impl in ('triton', None))
    x, grad_out = torch.randn(2, 1, 4, 5, 16)
    for out, expected in zip(_forward_and_grads(fused, x, grad_out),
                             _forward_and_grads(sdpa, x, grad_out)):
        assert_close(out, expected, rtol=1e-4, atol=1e-4)  # float32 sums in another order


def test_backbone_stm_cfg_reaches_every_block():
    model = UnifiedBackbone('swin', dict(base='micro', depths=(1, 2, 1, 2)),
                            stm_cfg=dict(impl='triton'))
    mixers = [m for m in model.modules() if isinstance(m, ShiftedWindowAttention)]
    assert len(mixers) == 6 and all(m.impl == 'triton' for m in mixers)
    assert not any('impl' in name for name in model.state_dict())


def test_impl_switch(monkeypatch):
    m = _mixer(None)
    assert m.resolve_impl(torch.device('cpu')) == 'sdpa'  # auto never picks Triton on the CPU
    monkeypatch.setenv('STM_MM_SWIN_IMPL', 'reference')
    assert m.resolve_impl(torch.device('cpu')) == 'reference'
    with use_reference_attention():
        assert _mixer('triton').resolve_impl(torch.device('cpu')) == 'reference'
    monkeypatch.setenv('TRITON_INTERPRET', '0')
    with pytest.raises(RuntimeError, match="impl='sdpa'"):
        _mixer('triton')(torch.randn(1, 3, 3, 8, dtype=torch.float64))
    with pytest.raises(ValueError, match='impl must be one of'):
        _mixer('fused')


def test_compile_traces_the_op():
    """Dynamo traces the mixer with the custom ops in one graph, backward included."""
    m = _mixer('triton', heads=1, window_size=3, block_index=1)
    x = torch.randn(1, 3, 5, 8, dtype=torch.float64, requires_grad=True)
    out = torch.compile(m, fullgraph=True, backend='aot_eager')(x)
    out.sum().backward()
    x_grad = x.grad
    x.grad = None
    expected = _mixer('reference', heads=1, window_size=3, block_index=1)(x)
    expected.sum().backward()
    assert_close(out, expected)
    assert_close(x_grad, x.grad)


def test_compile_specs_name_every_parameter():
    from stm_mm.ops.triton.window_attention import compile_specs
    specs = compile_specs()
    assert {s['name'] for s in specs} >= {'swin_window_attention_fwd_bf16',
                                          'swin_window_attention_bwd_dq_fp32',
                                          'swin_window_attention_bwd_dkdv_fp32'}
    for spec in specs:
        assert list(spec['args']) == spec['kernel'].arg_names


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a GPU')
@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
def test_gpu_triton_matches_sdpa(dtype):
    """U-Swin-tiny's stage 1 mixer (C 96, 3 heads, window 7) on a padded, shifted map: the
    kernels' error against float64 is at most about that of the sdpa path in the same dtype."""
    mixers = {impl: _mixer(impl, 96, 3, block_index=1).cuda() for impl in ('triton', 'sdpa')}
    x, grad_out = torch.randn(2, 2, 19, 23, 96, device='cuda', dtype=torch.float64)
    out, grads = _forward_and_grads(mixers['sdpa'], x, grad_out)
    exact = [out, *grads]
    errors = {}
    for impl, m in mixers.items():
        out, grads = _forward_and_grads(m.to(dtype), x.to(dtype), grad_out.to(dtype))
        results = [out, *grads]
        errors[impl] = [(r.double() - e).abs().max().item() for r, e in zip(results, exact)]
    for fused, sdpa, e in zip(errors['triton'], errors['sdpa'], exact):
        assert fused <= 2 * sdpa + 1e-5 * e.abs().max().item(), (errors, dtype)
