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


@pytest.mark.parametrize('stm', STM_NAMES)
def test_inference_mlp_chunks_equal_the_graph_path(stm, monkeypatch):
    """Without autograd the MLP branch runs on chunks of tokens; the result is the same."""
    from stm_mm.models.block import UnifiedBlock
    # 8 hidden channels per token at micro stage 0 (32 * 4 = 128): chunks of 5 tokens, ragged
    monkeypatch.setattr(UnifiedBlock, 'inference_chunk_elements', 5 * 128)
    model = UnifiedBackbone(stm, TINY, out_indices=(0, 1, 2, 3),
                            layer_scale_init_value=1.0).double().eval()
    x = torch.randn(2, 3, 45, 53, dtype=torch.float64)
    calls = []
    monkeypatch.setattr(UnifiedBlock, '_mlp_branch_in_chunks',
                        lambda self, t, f=UnifiedBlock._mlp_branch_in_chunks: calls.append(1) or
                        f(self, t))
    with torch.no_grad():
        chunked = model(x)
    graph = model(x)  # grad mode: the plain path
    assert len(calls) == 6  # every block
    for a, b in zip(chunked, graph):
        assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_no_chunks_when_paths_are_dropped():
    model = UnifiedBackbone('dwconv', TINY, drop_path_rate=0.5).train()
    block = model.stages[1].blocks[1]
    with torch.no_grad():
        assert not block._records_nothing()
    model.eval()
    with torch.no_grad():
        assert block._records_nothing()
    assert not block._records_nothing()  # grad mode
