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


@pytest.mark.parametrize('size,window,block_index,single,shift', [
    ((6, 6), 3, 1, False, 1),  # 2 x 2 windows, shifted
    ((5, 7), 3, 1, False, 1),  # padded to 6 x 9, shifted
    ((5, 7), 3, 0, False, 0),  # padded, regular windows
    ((2, 3), 3, 1, False, 0),  # smaller than one window: no shift ...
    ((2, 3), 3, 1, True, 1),  # ... unless shift_single_window
    ((9, 8), 7, 1, False, 3),  # U-Swin's window (49 tokens in a 64-token tile), padded
])
def test_triton_equals_reference(size, window, block_index, single, shift):
    """Forward and every gradient (input, qkv, table, proj) in float64, batch 2, 2 heads."""
    kwargs = dict(window_size=window, block_index=block_index, shift_single_window=single)
    fused, reference = _mixer('triton', **kwargs), _mixer('reference', **kwargs)
    assert fused.shift_for(*size) == shift
    x, grad_out = torch.randn(2, 2, *size, 8, dtype=torch.float64)
    out, grads = _forward_and_grads(fused, x, grad_out)
    expected, expected_grads = _forward_and_grads(reference, x, grad_out)
    assert_close(out, expected)
    for grad, expected_grad in zip(grads, expected_grads):
        assert_close(grad, expected_grad)


def test_opcheck():
    from stm_mm.ops.triton.window_attention import window_attention
    qkv = torch.randn(2, 6, 3, 3 * 2 * 4, dtype=torch.float64, requires_grad=True)
    table = torch.randn(25, 2, dtype=torch.float64, requires_grad=True)
    torch.library.opcheck(window_attention, (qkv, table, 2, 3, 1, 0.5))


def test_backbone_impl_triton_equals_default():
    """``stm_cfg=dict(impl='triton')`` reaches every block; float32, shifted blocks, padding."""
    torch.manual_seed(0)
    arch = dict(base='micro', depths=(1, 2, 1, 2))
    default = UnifiedBackbone('swin', arch, stm_cfg=dict(shift_single_window=True)).eval()
    fused = UnifiedBackbone('swin', arch, stm_cfg=dict(shift_single_window=True, impl='triton'))
    fused.load_state_dict(default.state_dict())
    assert all(m.impl == 'triton' for m in fused.modules() if isinstance(m, ShiftedWindowAttention))
    x = torch.randn(1, 3, 36, 28)
    with torch.no_grad():
        for expected, out in zip(default(x), fused.eval()(x)):
            assert_close(out, expected, rtol=1e-4, atol=1e-4)


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
    m = _mixer('triton', window_size=3, block_index=1)
    x = torch.randn(1, 5, 4, 8, dtype=torch.float64, requires_grad=True)
    compiled = torch.compile(m, fullgraph=True, backend='aot_eager')
    out = compiled(x)
    out.sum().backward()
    expected = _mixer('reference', window_size=3, block_index=1)(x)
    assert_close(out, expected)


def test_compile_specs_name_every_parameter():
    from stm_mm.ops.triton.window_attention import compile_specs
    specs = compile_specs()
    assert {s['name'] for s in specs} >= {'swin_window_attention_fwd_bf16',
                                          'swin_window_attention_bwd_fp32'}
    for spec in specs:
        assert list(spec['args']) == spec['kernel'].arg_names
