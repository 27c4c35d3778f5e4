"""MAC counts reproduce the authors' fvcore measurements (reference_complexity.md) exactly."""
import os

import pytest
from mmengine.config import Config

from stm_mm.analysis.complexity import complexity

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# fvcore totals of the authors' micro models at 1x3x224x224 (conv + linear + matmul + LN x5 +
# BN + avg-pool), and their conv + linear MACs.
FVCORE_TOTAL = dict(pvt=619_438_240, swin=709_000_832, dwconv=657_984_384, dcnv3=647_585_408)
CONV_PLUS_LINEAR = dict(halo=164_376_576 + 482_073_600, pvt=103_161_856 + 467_723_264,
                        swin=68_038_656 + 578_411_520, dwconv=211_027_712 + 437_115_904,
                        dcnv3=73_006_080 + 563_358_720)


@pytest.mark.parametrize('stm', ['halo', 'pvt', 'swin', 'dwconv', 'dcnv3'])
def test_micro_macs_match_authors(stm, monkeypatch):
    from mmpretrain.registry import MODELS
    monkeypatch.setenv('STM_MM_DCNV3_IMPL', 'pytorch')
    cfg = Config.fromfile(os.path.join(ROOT, f'configs/_base_/models/u_{stm}_micro.py'))
    cfg.model.pop('train_cfg')
    r = complexity(MODELS.build(cfg.model))
    assert r['conv'] + r['linear'] == CONV_PLUS_LINEAR[stm]
    if stm in FVCORE_TOTAL:
        assert r['total'] == FVCORE_TOTAL[stm]
    if stm == 'halo':  # Table IV: 0.65G = conv + linear + LayerNorm at 2 per element
        assert round(r['paper_local'] / 1e9, 2) == 0.65
