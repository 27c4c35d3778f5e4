"""MMEngine's ``compile`` option (``tools/train.py --compile``) through the real Runner."""
import pytest
import torch
from torch.testing import assert_close

from stm_mm.engine import CompileBackboneHook, build_runner

from .test_train_resume import _cfg


@pytest.mark.slow
def test_runner_compile_option_trains_like_eager(one_digit_per_class, tmp_path):
    """``compile`` through the ReliableRunner (what ``tools/train.py --compile`` sets; here with
    the code-free ``aot_eager`` backend): two iterations give eager mode's losses."""
    losses = []
    for compile_cfg in (None, dict(backend='aot_eager')):
        torch._dynamo.reset()
        cfg = _cfg('dwconv', one_digit_per_class, str(tmp_path / str(compile_cfg)), 2)
        cfg.randomness = dict(seed=0)
        # one block per stage: the option's plumbing is under test here, and the micro model's
        # 15 blocks took Dynamo ~3x as long to trace (tracing every STM: test_compiled_training)
        cfg.model.backbone.arch = dict(base='micro', depths=(1, 1, 1, 1))
        if compile_cfg:
            cfg.compile = compile_cfg
        runner = build_runner(cfg)
        runner.train()
        # the backbone's forward, and only it, was compiled (by CompileBackboneHook)
        assert ('forward' in vars(runner.model.backbone)) is bool(compile_cfg)
        assert any(isinstance(h, CompileBackboneHook) and h.options == compile_cfg
                   for h in runner.hooks) is bool(compile_cfg)
        losses.append(runner.message_hub.get_scalar('train/loss').data[0])
    assert_close(torch.tensor(losses[1]), torch.tensor(losses[0]), rtol=1e-4, atol=1e-5)
