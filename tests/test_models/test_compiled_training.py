"""Compiled training (``torch.compile``, ``tools/train.py --compile``) equals eager training."""
import pytest
import torch
from mmengine.config import Config
from torch.testing import assert_close

from stm_mm.engine import apply_cli_options
from stm_mm.models import STM_NAMES, UnifiedBackbone

# micro widths, one block per stage except two in stage 1: a shifted Swin block on an 8x8 map
# (padded to 14x14) at 32x32 input; Halo pads every stage's map to its 7x7 blocks
SMALL = dict(base='micro', depths=(2, 1, 1, 1))


def training_step(model, x):
    loss = sum(o.square().mean() for o in model(x))
    return loss, torch.autograd.grad(loss, [p for p in model.parameters() if p.requires_grad])


@pytest.mark.slow
@pytest.mark.parametrize('stm', STM_NAMES)
def test_compiled_training_step_equals_eager(stm):
    """Loss and every gradient of one training step, eager vs ``torch.compile``; the compiled
    model must be one graph (``fullgraph=True``), i.e. no graph break comes from stm_mm."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    stm_cfg = dict(shift_single_window=True) if stm == 'swin' else None
    model = UnifiedBackbone(stm, SMALL, stm_cfg=stm_cfg, out_indices=(0, 1, 2, 3),
                            layer_scale_init_value=1.0).train()
    x = torch.randn(2, 3, 32, 32)
    loss, grads = training_step(model, x)
    compiled_loss, compiled_grads = training_step(torch.compile(model, fullgraph=True), x)
    assert_close(compiled_loss, loss, rtol=1e-4, atol=1e-5)
    for a, b in zip(compiled_grads, grads):
        assert_close(a, b, rtol=1e-3, atol=1e-4)


def test_compile_flag_sets_the_runner_option():
    cfg = apply_cli_options(Config(dict(work_dir='w')), compile=True)
    assert cfg.compile is True
    assert 'compile' not in apply_cli_options(Config(dict(work_dir='w')))
