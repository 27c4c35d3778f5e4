"""The authors' mmdet 2.x Mask R-CNN checkpoints -> stm_mm's mmdet 3.x detectors.

An authors'-style detector state dict is synthesised from our own built detector by the reverse
mapping; its backbone keys must be exactly the authors' detection names (their classification
keys without stage norms and classifier head, plus out_norm_i, section 6.3/6.5 of the spec); it
must convert back to our keys and load strictly.
"""
import os.path as osp
import runpy
import sys

import pytest
import torch
from mmengine.config import Config

from stm_mm.converters import _DROPPED
from stm_mm.models import STM_NAMES
from stm_mm.authors_checkpoints import mmdet2_to_stm_mm

from .. import ROOT
from ..official_keys import official_keys
from ..helpers.detectors import stm_mm_to_mmdet2


def build_detector(stm, scale='micro'):
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    import stm_mm  # noqa: F401
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(osp.join(ROOT, f'configs/det/u_{stm}_{scale}_maskrcnn.py'))
    cfg.model.backbone.init_cfg = None
    return MODELS.build(cfg.model)


def authors_detector_state_dict(model, stm):
    """What the authors' mmdet 2.x checkpoint of this detector holds (random values)."""
    ours = {k: torch.randn(v.shape) for k, v in model.state_dict().items()}
    theirs = stm_mm_to_mmdet2(ours, stm)
    if stm == 'swin':  # timm's WindowAttention buffer, saved by the authors' detector
        for key in list(theirs):
            if key.endswith('attn.relative_position_bias_table'):
                theirs[key.replace('bias_table', 'index')] = torch.zeros(49, 49,
                                                                          dtype=torch.long)
    return ours, theirs


@pytest.mark.parametrize('stm', STM_NAMES)
def test_mmdet2_round_trip(stm):
    model = build_detector(stm)
    ours, theirs = authors_detector_state_dict(model, stm)
    cls_keys = official_keys(stm, 'micro')
    expected = {'backbone.' + k: s for k, s in cls_keys.items()
                if not k.startswith(('stage_norms.', 'conv_head.', 'head.'))
                and not k.endswith('attn_mask')}
    for i in range(4):
        dim = cls_keys[f'stage_norms.{i}.weight'][0]
        for p in ('weight', 'bias'):
            expected[f'backbone.out_norm_{i}.{p}'] = (dim, )
    got = {k: tuple(v.shape) for k, v in theirs.items() if k.startswith('backbone.')}
    assert got == expected
    converted, report = mmdet2_to_stm_mm(theirs)
    assert set(converted) == set(ours)
    for key, value in ours.items():
        assert torch.equal(converted[key], value), key
    model.load_state_dict(converted, strict=True)
    dropped = [r[1] for r in report.keys('dropped')]
    assert all(_DROPPED.search(k) for k in dropped)
    assert (len(dropped) > 0) == (stm == 'swin')


def test_mmdet2_unknown_key_fails():
    with pytest.raises(KeyError, match='roi_head.semantic_head'):
        mmdet2_to_stm_mm({'roi_head.semantic_head.conv.weight': torch.zeros(1)})


def test_mmdet2_cli(tmp_path):
    model = build_detector('halo')
    ours, theirs = authors_detector_state_dict(model, 'halo')
    src = tmp_path / 'mask_rcnn_unified_halonet_micro_1x.pth'
    classes = tuple(f'c{i}' for i in range(80))
    torch.save({'state_dict': theirs, 'meta': {'CLASSES': classes, 'epoch': 12},
                'optimizer': {}}, src)
    dst = tmp_path / 'out.pth'
    tool = osp.join(ROOT, 'tools/model_converters/mmdet2_to_stm_mm.py')
    old = sys.argv
    sys.argv = [tool, str(src), str(dst), '--config',
                osp.join(ROOT, 'configs/det/u_halo_micro_maskrcnn.py')]
    try:
        runpy.run_path(tool, run_name='__main__')
    finally:
        sys.argv = old
    out = torch.load(dst, map_location='cpu')
    assert out['meta']['dataset_meta']['classes'] == classes
    assert set(out['state_dict']) == set(ours)
