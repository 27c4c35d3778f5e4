"""Fused Halo attention (Triton; under the interpreter without a GPU) against the reference."""
import pytest
import torch
from torch.testing import assert_close

from stm_mm.models import UnifiedBackbone
from stm_mm.models.mixers import HaloAttention
from stm_mm.models.utils import reference_attention, use_reference_attention
from stm_mm.models.utils.windows import halo_border_logits

# float64 under the interpreter without a GPU (tests/conftest.py), on the GPU with one
DEVICE = 'cuda' if torch.cuda.is_available() else 'cpu'

# U-HaloNet's variants at tiny sizes: (dim, heads, options, map size)
VARIANTS = {
    'halo3': (16, 2, dict(), (9, 10)),  # sides not multiples of b; every window has a border
    '1px': (16, 2, dict(halo_size=1), (9, 8)),
    'top_left': (16, 2, dict(query_position='top_left'), (7, 12)),
    'switch_odd': (16, 2, dict(switch=True, block_index=1), (8, 7)),  # halo 0
    'dk_ne_dv': (36, 3, dict(block_size=3, halo_size=1), (5, 4)),  # dk 13, dv 12, three heads
}


def _mixer(name, **kwargs):
    dim, heads, options, size = VARIANTS[name]
    m = HaloAttention(dim, heads, **options, **kwargs).double()
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.3)
    return m.to(DEVICE), torch.randn(1, *size, dim, dtype=torch.float64, device=DEVICE)


def _run(m, x):
    """Output and the gradients of the input and every parameter for a random output grad."""
    x = x.clone().requires_grad_()
    out = m(x)
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(1)).to(out)
    leaves = [x, *m.parameters()]
    return out, torch.autograd.grad(out, leaves, grad)


def _op_inputs(m, B=1, nH=2, nW=3):
    """Random block-padded maps q, kv and per-axis terms (border included) for mixer ``m``."""
    b, w, n = m.block_size, m.window_size, m.num_heads
    Hp, Wp = nH * b, nW * b
    f64 = dict(dtype=torch.float64, device=DEVICE)
    q = torch.randn(B, Hp, Wp, n * m.dim_qk, **f64)
    kv = torch.randn(B, Hp, Wp, n * (m.dim_qk + m.dim_v), **f64)
    raw = torch.randn(B, nH * nW, n, b * b, 2 * w, **f64)
    border = halo_border_logits(Hp, Wp, b, m.pad_before, m.pad_after, q.device, q.dtype)
    return q, kv, raw, border.view(nH * nW, 1, 1, 2 * w)


def _op_reference(m, q, kv, terms):
    """The readable path: windows cut from the zero-bordered map, the full bias, softmax."""
    w, b = m.window_size, m.block_size
    B, Hp, Wp, _ = q.shape
    bias = (terms[..., :w, None] + terms[..., None, w:]).flatten(-2)
    k, v = m._windows(kv, reference=True)
    out = reference_attention(m._blocks(q), k, v, bias, m.scale)
    out = out.view(B, Hp // b, Wp // b, m.num_heads, b, b, m.dim_v)
    return out.permute(0, 1, 4, 2, 5, 3, 6).reshape(B, Hp, Wp, -1)


def test_op_matches_reference_float64():
    """Output and the gradients of q, kv and the terms, at float64."""
    from stm_mm.ops.triton.halo_attention import halo_attention
    m, _ = _mixer('dk_ne_dv')
    q, kv, raw, border = _op_inputs(m)
    results = []
    for fn in (lambda t: halo_attention(q_, kv_, t, m.num_heads, m.block_size, m.pad_before,
                                        m.window_size, m.scale),
               lambda t: _op_reference(m, q_, kv_, t)):
        q_, kv_, raw_ = (t.clone().requires_grad_() for t in (q, kv, raw))
        out = fn(raw_ + border)
        grads = torch.autograd.grad(out, (q_, kv_, raw_), torch.ones_like(out).cumsum(-1).cos())
        results.append((out, *grads))
    for got, expected in zip(*results):
        assert_close(got, expected)


@pytest.mark.parametrize('name', list(VARIANTS))
def test_mixer_triton_matches_reference_float64(name):
    m, x = _mixer(name, impl='triton')
    out, grads = _run(m, x)
    m.impl = 'reference'
    expected, expected_grads = _run(m, x)
    assert_close(out, expected)
    for got, ref in zip(grads, expected_grads):
        assert_close(got, ref)


def test_mixer_triton_matches_sdpa_and_default():
    m, x = _mixer('halo3', impl='triton')
    out, grads = _run(m, x)
    for impl in ('sdpa', None):  # None: 'auto', the SDPA path on the CPU
        m.impl = impl
        expected, expected_grads = _run(m, x)
        assert_close(out, expected)
        for got, ref in zip(grads, expected_grads):
            assert_close(got, ref)
        with torch.no_grad():
            assert_close(m(x), out)


def test_opcheck():
    from stm_mm.ops.triton.halo_attention import halo_attention_bwd, halo_attention_fwd
    m, _ = _mixer('dk_ne_dv')
    q, kv, raw, border = _op_inputs(m, nH=1, nW=1)
    geometry = (m.num_heads, m.block_size, m.pad_before, m.window_size, m.scale)
    tensors = (q, kv, raw + border)
    leaves = [t.clone().requires_grad_() for t in tensors]
    torch.library.opcheck(halo_attention_fwd, (*leaves, *geometry))
    out, lse = halo_attention_fwd(*tensors, *geometry)
    torch.library.opcheck(halo_attention_bwd, (torch.randn_like(out), *tensors, out, lse,
                                               *geometry))


def test_compiles_fullgraph():
    """Dynamo traces the mixer with its custom ops without a graph break, forward and backward."""
    m, x = _mixer('dk_ne_dv', impl='triton')
    out, grads = _run(torch.compile(m, fullgraph=True, backend='aot_eager'), x)
    expected, expected_grads = _run(m, x)
    assert_close(out, expected)
    for got, ref in zip(grads, expected_grads):
        assert_close(got, ref)


def test_impl_switch(monkeypatch):
    with pytest.raises(ValueError, match='impl must be one of'):
        HaloAttention(16, 2, impl='fused')
    m = HaloAttention(16, 2)
    monkeypatch.setenv('TRITON_INTERPRET', '1')
    assert m.resolve_impl(torch.device('cpu')) == 'sdpa'  # 'auto' never picks the interpreter
    monkeypatch.setenv('STM_MM_HALO_IMPL', 'triton')
    assert m.resolve_impl(torch.device('cpu')) == 'triton'
    with use_reference_attention():
        assert m.resolve_impl(torch.device('cpu')) == 'reference'
    monkeypatch.setenv('TRITON_INTERPRET', '0')
    with pytest.raises(RuntimeError, match='cannot run here: Triton kernels need a CUDA'):
        m.resolve_impl(torch.device('cpu'))
    model = UnifiedBackbone('halo', dict(base='micro', depths=(1, 1, 1, 1)),
                            stm_cfg=dict(impl='reference'))
    assert model.stages[0].blocks[0].mixer.impl == 'reference'
    assert not any('impl' in key for key in model.state_dict())


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a GPU')
@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
def test_cuda_matches_sdpa(dtype):
    """U-HaloNet-tiny's stage-1 mixer (3 heads of 32 channels) on the GPU, float32 or under
    bfloat16 autocast; the two bfloat16 paths round differently, so they are compared by the
    relative error of the whole tensor."""
    m = HaloAttention(96, 3, impl='triton').cuda()
    x = torch.randn(2, 30, 33, 96, device='cuda')
    with torch.autocast('cuda', dtype=dtype, enabled=dtype != torch.float32):
        results = _run(m, x)
        m.impl = 'sdpa'
        expected = _run(m, x)
    for got, ref in zip((results[0], *results[1]), (expected[0], *expected[1])):
        assert got.dtype == ref.dtype
        if dtype == torch.float32:
            assert_close(got, ref, rtol=1e-4, atol=1e-4)
        else:
            assert (got.float() - ref.float()).norm() <= 2e-2 * ref.float().norm()
