"""MAC counts reproduce the authors' fvcore measurements exactly."""
import os

import pytest
from mmengine.config import Config

from stm_mm.analysis.complexity import complexity

from .. import ROOT


# fvcore totals of the authors' micro models at 1x3x224x224 (conv + linear + matmul + LN x5 +
# BN + avg-pool), and their conv + linear MACs.
FVCORE_TOTAL = dict(halo=869_062_272, pvt=619_438_240, swin=709_000_832, dwconv=657_984_384,
                    dcnv3=647_585_408)
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
    assert r['total'] == FVCORE_TOTAL[stm]
    if stm == 'halo':  # Table IV: 0.65G = conv + linear + LayerNorm at 2 per element
        assert round(r['paper_local'] / 1e9, 2) == 0.65


@pytest.mark.parametrize('path', ['configs/_base_/models/u_halo_small.py',
                                  'configs/cls/ablation/u_halo_small_switch_in1k.py'])
def test_halo_table7_counts_the_used_table_rows(path):
    """Table VII's U-HaloNet-S rows = conv + linear + attention without the table rows that
    Halo scores but no query uses (9.75 G, Switch 9.45 G)."""
    from mmpretrain.registry import MODELS

    from stm_mm.analysis.complexity import halo_unused_table_macs
    from stm_mm.analysis.paper import TABLE_VII
    cfg = Config.fromfile(os.path.join(ROOT, path))
    cfg.model.pop('train_cfg', None)
    model = MODELS.build(cfg.model)
    r = complexity(model)
    used = r['conv'] + r['linear'] + r['attention'] - halo_unused_table_macs(model)
    name = 'u_halo_small_switch' if 'switch' in path else 'u_halo_small'
    assert abs(used / 1e9 - TABLE_VII[name][0]) < 0.011


def test_halo_unused_table_macs_by_hand():
    from stm_mm.analysis.complexity import halo_unused_table_macs
    from stm_mm.models import UnifiedBackbone
    model = UnifiedBackbone('halo', dict(base='micro', depths=(1, 1, 1, 1)))
    mixers = [stage.blocks[0].mixer for stage in model.stages]
    # 60x60 -> stage maps 15, 8, 4, 2, padded to multiples of the block (7): 21, 14, 7, 7;
    # each query scores 2 x (2w - 1) table rows and uses 2w of them (w = 13)
    expected = sum(side * side * m.num_heads * m.dim_qk * 2 * (m.window_size - 1)
                   for side, m in zip((21, 14, 7, 7), mixers))
    assert halo_unused_table_macs(model, (1, 3, 60, 60)) == expected
