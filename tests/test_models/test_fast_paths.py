"""Fused attention vs the readable reference, mixed precision and torch.compile."""
import pytest
import torch
from torch.testing import assert_close

from stm_mm.models import STM_NAMES, UnifiedBackbone
from stm_mm.models.utils import use_reference_attention

TINY = dict(base='micro', depths=(1, 2, 1, 2))  # odd blocks in two stages: shifted Swin blocks


@pytest.mark.parametrize('stm', ['halo', 'pvt', 'swin'])
@pytest.mark.parametrize('size', [(64, 64), (97, 131), (224, 224)])
@pytest.mark.parametrize('detection', [False, True])
def test_fused_equals_reference(stm, size, detection):
    kwargs = dict(layer_scale_init_value=1.0, out_indices=(0, 1, 2, 3))
    if detection:
        kwargs.update(norm_placement='output', pos_embed_in_residual=False)
        if stm == 'swin':
            kwargs['stm_cfg'] = dict(shift_single_window=True)
    model = UnifiedBackbone(stm, TINY, **kwargs).eval()
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        fast = model(x)
        with use_reference_attention():
            ref = model(x)
    for a, b in zip(fast, ref):
        assert_close(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('stm', STM_NAMES)
@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_autocast_gives_finite_outputs(stm, dtype):
    model = UnifiedBackbone(stm, TINY, out_indices=(0, 1, 2, 3),
                            layer_scale_init_value=1.0).eval()
    x = torch.randn(2, 3, 61, 83)  # padded windows: masked keys in every window mixer
    with torch.no_grad():
        full = model(x)
        with torch.autocast('cpu', dtype=dtype):
            half = model(x)
    for a, b in zip(full, half):
        assert torch.isfinite(b).all()
        assert torch.nn.functional.cosine_similarity(a.flatten(), b.float().flatten(), 0) > 0.98


def test_half_precision_training_step_has_finite_grads():
    model = UnifiedBackbone('halo', TINY, layer_scale_init_value=1.0)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = model(torch.randn(2, 3, 50, 50))[0].float().square().mean()
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.slow
def test_torch_compile_forward():
    model = UnifiedBackbone('halo', dict(base='micro', depths=(1, 1, 1, 1)),
                            out_indices=(0, 1, 2, 3), layer_scale_init_value=1.0).eval()
    x = torch.randn(1, 3, 64, 64)
    compiled = torch.compile(model)
    with torch.no_grad():
        expected = model(x)
        got = compiled(x)
    for a, b in zip(expected, got):
        assert_close(a, b, rtol=1e-4, atol=1e-4)
