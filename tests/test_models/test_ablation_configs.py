"""Every ablation config (Tables II, VI, VII) builds and trains a step on CPU."""
import glob
import os

import pytest
import torch
from mmengine.config import Config

from .. import ROOT

CONFIGS = sorted(glob.glob(os.path.join(ROOT, 'configs/cls/ablation/*.py')))


def build(path, shallow=False):
    """The config's model; ``shallow`` keeps its widths and options but uses 1-1-2-1 blocks."""
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(path)
    cfg.model.pop('train_cfg', None)
    if shallow:
        cfg.model.backbone.arch = dict(base=cfg.model.backbone.arch, depths=(1, 1, 2, 1))
    return MODELS.build(cfg.model), cfg


def test_all_ablation_configs_exist():
    names = {os.path.basename(p) for p in CONFIGS}
    expected = {f'u_halo_small_{v}_in1k.py' for v in ('switch', '1px', 'shift')}
    expected |= {f'u_{stm}_small_arch{a}_in1k.py' for stm in ('halo', 'pvt', 'swin', 'dwconv',
                                                              'dcnv3') for a in 'BCDE'}
    expected |= {'u_swin_tiny_nonoverlap_in1k.py', 'u_dwconv_tiny_nonoverlap_in1k.py',
                 'u_halo_tiny_resblock_in1k.py', 'u_dwconv_tiny_convnextblock_in1k.py'}
    assert names == expected


@pytest.mark.parametrize('path', CONFIGS, ids=os.path.basename)
def test_ablation_config_forward_backward(path):
    model, cfg = build(path, shallow=True)
    model.train()
    logits = model(torch.randn(2, 3, 64, 64), mode='tensor')
    assert logits.shape == (2, 1000)
    logits.logsumexp(-1).mean().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_original_swin_matches_authors_parameter_count():
    """official_swin_tiny in the authors' code: 28.297M parameters (the authors' own count)."""
    model, _ = build(os.path.join(ROOT, 'configs/cls/ablation/u_swin_tiny_nonoverlap_in1k.py'))
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 3) == 28.297


def test_convnext_block_for_dwconv_has_no_projections():
    model, _ = build(os.path.join(ROOT, 'configs/cls/ablation/u_dwconv_tiny_convnextblock_in1k.py'))
    block = model.backbone.stages[0].blocks[0]
    assert isinstance(block.mixer.input_proj, torch.nn.Identity)
    assert block.norm.eps == 1e-6
