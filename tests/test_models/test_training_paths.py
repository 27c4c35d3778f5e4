"""Training fast paths equal the readable reference: forward and every gradient, in float64."""
import pytest
import torch
from torch.testing import assert_close

from stm_mm.models import UnifiedBackbone
from stm_mm.models.mixers import HaloAttention
from stm_mm.models.utils import use_reference_attention
from stm_mm.models.utils.attention import reference_attention
from stm_mm.models.utils.explicit_attention import axis_bias_attention


def full_bias(terms):
    w = terms.shape[-1] // 2
    return (terms[..., :w, None] + terms[..., None, w:]).flatten(-2)


def test_axis_bias_attention_equals_explicit_softmax():
    """Forward and the gradients of q, k, v and both axis terms, with masked (very negative)
    entries as the Halo border adds them, on an odd window (w = 5)."""
    torch.manual_seed(0)
    w, L = 5, 9
    q, k, v = (torch.randn(2, 3, 2, n, 4, dtype=torch.float64, requires_grad=True)
               for n in (L, w * w, w * w))
    terms = torch.randn(2, 3, 2, L, 2 * w, dtype=torch.float64)
    terms[0, 1, :, :, 0] += torch.finfo(torch.float64).min / 4  # key row 0 outside the map
    terms[1, 2, :, :, -1] += torch.finfo(torch.float64).min / 4  # key column w - 1 outside
    terms.requires_grad_()
    inputs = (q, k, v, terms)
    fast = axis_bias_attention(q, k, v, terms, 0.7)
    ref = reference_attention(q, k, v, full_bias(terms), 0.7)
    assert_close(fast, ref, rtol=1e-12, atol=1e-12)
    grad = torch.randn_like(fast)
    fast_grads = torch.autograd.grad(fast, inputs, grad)
    ref_grads = torch.autograd.grad(ref, inputs, grad)
    for a, b in zip(fast_grads, ref_grads):
        assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_axis_bias_attention_gradcheck():
    torch.manual_seed(0)
    q = torch.randn(1, 2, 4, 3, dtype=torch.float64, requires_grad=True)
    k, v = (torch.randn(1, 2, 9, 3, dtype=torch.float64, requires_grad=True) for _ in range(2))
    terms = torch.randn(1, 2, 4, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *t: axis_bias_attention(*t, 0.5), (q, k, v, terms))


@pytest.mark.parametrize('kwargs', [dict(), dict(query_position='top_left'),
                                    dict(halo_size=1), dict(block_index=1, switch=True)])
@pytest.mark.parametrize('size', [(14, 21), (13, 23)])  # exact blocks, padded blocks
def test_halo_training_path_equals_reference(kwargs, size):
    """The mixer's training path (grad mode) vs the reference: output and every gradient."""
    torch.manual_seed(0)
    mixer = HaloAttention(16, 2, block_size=7, **kwargs).double()
    x = torch.randn(2, *size, 16, dtype=torch.float64, requires_grad=True)
    grad = torch.randn(2, *size, 16, dtype=torch.float64)
    params = [x] + list(mixer.parameters())
    fast = mixer(x)
    fast_grads = torch.autograd.grad(fast, params, grad)
    with use_reference_attention():
        ref = mixer(x)
        ref_grads = torch.autograd.grad(ref, params, grad)
    assert_close(fast, ref, rtol=1e-10, atol=1e-10)
    for a, b in zip(fast_grads, ref_grads):
        assert_close(a, b, rtol=1e-9, atol=1e-9)


def test_halo_backbone_training_step_equals_reference():
    """A whole backbone (layer scales 1) in float64: loss and every parameter gradient."""
    torch.manual_seed(0)
    model = UnifiedBackbone('halo', dict(base='micro', depths=(1, 1, 1, 1)),
                            out_indices=(0, 1, 2, 3), layer_scale_init_value=1.0).double()
    x = torch.randn(2, 3, 45, 61, dtype=torch.float64)

    def step():
        loss = sum(o.square().mean() for o in model(x))
        return loss, torch.autograd.grad(loss, list(model.parameters()))

    loss, grads = step()
    with use_reference_attention():
        ref_loss, ref_grads = step()
    assert_close(loss, ref_loss, rtol=1e-12, atol=1e-12)
    for a, b in zip(grads, ref_grads):
        assert_close(a, b, rtol=1e-9, atol=1e-9)


def test_fused_drop_path_residual_equals_drop_path_module():
    """``residual`` (one addcmul) vs ``x + DropPath(gamma * y)``: same random numbers, same
    values and gradients (float64), some paths dropped and some kept."""
    from mmcv.cnn.bricks import DropPath

    from stm_mm.models.block import UnifiedBlock
    block = UnifiedBlock(8, torch.nn.Identity(), drop_path=0.5).double().train()
    x, y = (torch.randn(16, 3, 5, 8, dtype=torch.float64, requires_grad=True) for _ in range(2))
    gamma = torch.randn(8, dtype=torch.float64, requires_grad=True)
    torch.manual_seed(0)
    fused = block.residual(x, gamma, y)
    torch.manual_seed(0)
    ref = x + DropPath(0.5).train()(gamma * y)
    assert 0 < (fused == x).all(-1).all(-1).all(-1).sum() < 16  # some dropped, some kept
    assert_close(fused, ref, rtol=1e-12, atol=1e-12)
    grad = torch.randn_like(ref)
    for a, b in zip(torch.autograd.grad(fused, (x, gamma, y), grad),
                    torch.autograd.grad(ref, (x, gamma, y), grad)):
        assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize('stm', ['dwconv', 'dcnv3'])
def test_depthwise_conv_backbone_training_step_equals_pytorch_convolution(stm, monkeypatch):
    """DW-Conv (7x7, compiled parameter gradients) and DCNv3 (3x3 offset branch) backbones in
    float64 on odd sizes: loss and every parameter gradient with the compiled depth-wise backward
    and with PyTorch's convolution backward."""
    import stm_mm.models.utils.layers as layers
    from stm_mm.ops import depthwise_conv
    if depthwise_conv._ext is None:
        pytest.skip('stm_mm._ext not built')
    torch.manual_seed(0)
    model = UnifiedBackbone(stm, dict(base='micro', depths=(1, 1, 1, 1)),
                            out_indices=(0, 1, 2, 3), layer_scale_init_value=1.0).double()
    x = torch.randn(2, 3, 45, 61, dtype=torch.float64)

    def step():
        loss = sum(o.square().mean() for o in model(x))
        return loss, torch.autograd.grad(loss, list(model.parameters()))

    calls = []
    real = layers.use_compiled_backward
    monkeypatch.setattr(layers, 'use_compiled_backward',
                        lambda *a, **k: calls.append(real(*a, **k)) or calls[-1])
    loss, grads = step()
    assert any(calls) == (stm == 'dwconv')  # only 7x7 kernels take the compiled backward
    monkeypatch.setattr(layers, 'use_compiled_backward', lambda *a, **k: False)
    ref_loss, ref_grads = step()
    assert_close(loss, ref_loss, rtol=1e-12, atol=1e-12)
    for a, b in zip(grads, ref_grads):
        assert_close(a, b, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize('window,stride,blocks', [
    (13, 7, (4, 3)),   # Halo: 7x7 blocks, halo 3 (two pieces per axis)
    (9, 7, (2, 5)),    # U-HaloNet-1px
    (7, 7, (3, 2)),    # switch blocks without halo (no overlap)
    (12, 5, (3, 4)),   # three pieces per axis, the last one partial
])
def test_overlapping_windows_backward_equals_unfold(window, stride, blocks):
    """The strided-add backward of the Halo key/value windows against ``unfold``'s own
    (float64, every element of the map's gradient), and the same forward values."""
    from stm_mm.models.utils.windows import overlapping_windows, overlapping_windows_reference
    torch.manual_seed(0)
    heads, e = 3, 5
    H = (blocks[0] - 1) * stride + window
    W = (blocks[1] - 1) * stride + window
    x = torch.randn(2, H, W, heads * e, dtype=torch.float64, requires_grad=True)
    out = overlapping_windows(x, window, stride, heads)
    ref = overlapping_windows_reference(x, window, stride, heads)
    assert out.grad_fn is not ref.grad_fn and out.shape == (2, blocks[0] * blocks[1], heads,
                                                           window * window, e)
    assert_close(out, ref, rtol=0, atol=0)
    grad = torch.randn_like(out)
    (fast, ) = torch.autograd.grad(out, x, grad)
    (slow, ) = torch.autograd.grad(ref, x, grad)
    assert_close(fast, slow, rtol=1e-12, atol=1e-12)
