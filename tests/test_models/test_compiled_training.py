"""Compiled training (``torch.compile``, ``tools/train.py --compile``) equals eager training."""
import pytest
import torch
from mmengine.config import Config
from torch.testing import assert_close

from stm_mm.engine import apply_cli_options
from stm_mm.models import ARCH_ZOO, STM_NAMES, UnifiedBackbone

# micro widths, one block per stage except, for Swin, two in stage 1: a shifted Swin block on an
# 8x8 map (padded to 14x14) at 32x32 input; Halo pads every stage's map to its 7x7 blocks. The
# other mixers' blocks do not depend on the block index (Halo's only with ``switch``, off here),
# so a second block would trace the same code again (a fifth of the tracing time).
SMALL = dict(base='micro', depths=(2, 1, 1, 1))
ONE_BLOCK_PER_STAGE = (1, 1, 1, 1)


def training_step(model, x):
    outs = model(x)
    loss = sum(o.square().mean() for o in (outs if isinstance(outs, tuple) else (outs, )))
    return loss, torch.autograd.grad(loss, [p for p in model.parameters() if p.requires_grad])


def build(stm, depths):
    torch._dynamo.reset()
    torch.manual_seed(0)
    stm_cfg = dict(shift_single_window=True) if stm == 'swin' else None
    return UnifiedBackbone(stm, dict(base='micro', depths=depths), stm_cfg=stm_cfg,
                           out_indices=(0, 1, 2, 3), layer_scale_init_value=1.0).train()


def assert_compiled_step_equals_eager(model, backend, x):
    """Loss and every gradient of one training step, eager vs ``torch.compile``; the model must
    compile to one graph (``fullgraph=True``): no graph break comes from stm_mm."""
    loss, grads = training_step(model, x)
    compiled = torch.compile(model, backend=backend, fullgraph=True)
    compiled_loss, compiled_grads = training_step(compiled, x)
    assert_close(compiled_loss, loss, rtol=1e-4, atol=1e-5)
    for a, b in zip(compiled_grads, grads):
        assert_close(a, b, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize('stm', STM_NAMES)
def test_traced_training_step_equals_eager(stm):
    """Every STM traces to one forward and one backward graph (AOTAutograd, no code generation:
    seconds per model) that compute the eager step."""
    depths = SMALL['depths'] if stm == 'swin' else ONE_BLOCK_PER_STAGE
    assert_compiled_step_equals_eager(build(stm, depths), 'aot_eager',
                                      torch.randn(2, 3, 32, 32))


@pytest.mark.slow
def test_inductor_training_step_equals_eager():
    """The generated CPU code (inductor) of the STM with the custom attention backward, on one
    stage of one block (2 heads, its 8x8 map padded to the 7x7 blocks: every path of the block;
    the whole backbone traces to one graph above); the other STMs' inductor runs are measured in
    docs/speed.md (compiling all five takes minutes)."""
    stage = build('halo', ONE_BLOCK_PER_STAGE).stages[1]  # 2 heads
    dim = ARCH_ZOO['halo']['micro']['dims'][1]
    assert_compiled_step_equals_eager(stage, 'inductor', torch.randn(2, dim, 8, 8))


def test_compile_flag_sets_the_runner_option():
    cfg = apply_cli_options(Config(dict(work_dir='w')), compile=True)
    assert cfg.compile is True
    assert 'compile' not in apply_cli_options(Config(dict(work_dir='w')))

