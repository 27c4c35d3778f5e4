"""The GEMM floor counts exactly the linear layers' products of a training step."""
import torch
import torch.nn as nn

from stm_mm.analysis.gemm_floor import gemm_flops, make_gemm_step, record_linear_calls


def test_records_every_linear_call_with_its_token_count():
    model = nn.Sequential(nn.Linear(6, 10), nn.GELU(), nn.Linear(10, 6, bias=False),
                          nn.Linear(6, 10))
    calls = record_linear_calls(model, torch.randn(2, 3, 5, 6))
    assert calls == {(30, 6, 10, True): 2, (30, 10, 6, False): 1}
    assert gemm_flops(calls) == 3 * 2 * 30 * (6 * 10 * 2 + 10 * 6)
    assert gemm_flops(calls, train=False) == 2 * 30 * (6 * 10 * 2 + 10 * 6)


def test_records_training_shapes_of_a_backbone_not_inference_chunks():
    import stm_mm
    backbone = stm_mm.MODELS.build(dict(type='UnifiedBackbone', stm='dwconv', arch='micro'))
    backbone.eval()  # eval mode: the CPU inference path would chunk the MLPs
    calls = record_linear_calls(backbone, torch.randn(1, 3, 64, 64))
    # stage 1 of micro: 16 x 16 tokens of width 32, MLP 32 -> 128 -> 32, once per block
    assert calls[(256, 32, 128, True)] == 3  # micro DW-Conv: 3 blocks in stage 1


def test_gemm_step_runs_the_recorded_products(monkeypatch):
    ran = []
    monkeypatch.setattr(torch.Tensor, 'mm', lambda self, other: ran.append(
        (tuple(self.shape), tuple(other.shape))))
    step = make_gemm_step({(4, 3, 5, True): 2})
    step()
    assert ran == [((4, 5), (5, 3)), ((5, 4), (4, 3))] * 2
