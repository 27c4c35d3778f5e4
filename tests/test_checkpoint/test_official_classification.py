"""The authors' classification checkpoints <-> stm_mm, on synthetic state dicts of all 20 models.

Each state dict is built from the authors' key/shape lists (every tensor of their models,
vendored in tests/data/official_keys.json.gz) filled with random values, converted, loaded strictly into the classifier of
configs/_base_/models/u_<stm>_<scale>.py and converted back.
"""
import os
import os.path as osp
import runpy
import sys

import pytest
import torch
from mmengine.config import Config

from stm_mm.converters import _DROPPED, official_to_stm_mm, stm_mm_to_official
from stm_mm.models import SCALES, STM_NAMES

from .. import ROOT
from ..official_keys import official_keys


def official_state_dict(stm, scale, seed=0):
    """Random tensors with the authors' keys and shapes (int64 buffers, scalar BN counter)."""
    keys = official_keys(stm, scale)
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in keys.items():
        if key.endswith('relative_position_index'):
            state[key] = torch.randint(0, 169, shape, generator=gen)
        elif key.endswith('num_batches_tracked'):
            state[key] = torch.tensor(123)
        else:
            state[key] = torch.randn(shape, generator=gen)
    return state


def build_classifier(stm, scale):
    from mmpretrain.registry import MODELS

    import stm_mm  # noqa: F401
    cfg = Config.fromfile(osp.join(ROOT, f'configs/_base_/models/u_{stm}_{scale}.py'))
    with torch.device('meta'):  # shapes and names only; tensors are assigned on load
        return MODELS.build(cfg.model)


@pytest.mark.parametrize('scale', SCALES)
@pytest.mark.parametrize('stm', STM_NAMES)
def test_official_classification_round_trip(stm, scale):
    official = official_state_dict(stm, scale)
    converted = official_to_stm_mm(official)
    model = build_classifier(stm, scale)
    own = model.state_dict()
    # every key mapped, none left over, shapes equal
    kept = [k for k in official if not _DROPPED.search(k)]
    assert len(converted) == len(kept)
    assert set(converted) == set(own)
    for key, value in converted.items():
        assert tuple(value.shape) == tuple(own[key].shape), key
    model.load_state_dict(converted, strict=True, assign=True)
    # back again: equal to the original minus Swin's size-derived buffers
    back = stm_mm_to_official(converted, stm)
    assert set(back) == set(kept)
    for key in kept:
        assert back[key].shape == official[key].shape, key
        assert torch.equal(back[key], official[key]), key
    if stm == 'swin':
        assert len(kept) < len(official)  # relative_position_index / attn_mask were dropped


def run_tool(path, *argv):
    old = sys.argv
    sys.argv = [path, *argv]
    try:
        runpy.run_path(path, run_name='__main__')
    finally:
        sys.argv = old


def test_official_to_stm_mm_cli(tmp_path):
    official = official_state_dict('swin', 'micro')
    src = tmp_path / 'unified_swin_micro.pth'
    torch.save({'model': official, 'epoch': 299}, src)
    dst = tmp_path / 'u_swin_micro_in1k.pth'
    tool = osp.join(ROOT, 'tools/model_converters/official_to_stm_mm.py')
    run_tool(tool, str(src), str(dst), '--config',
             osp.join(ROOT, 'configs/_base_/models/u_swin_micro.py'))
    ours = torch.load(dst, map_location='cpu')
    assert set(ours) == {'state_dict', 'meta'}
    assert all(k.startswith(('backbone.', 'neck.', 'head.')) for k in ours['state_dict'])
    back = tmp_path / 'back.pth'
    run_tool(tool, str(dst), str(back), '--reverse', '--stm', 'swin')
    theirs = torch.load(back, map_location='cpu')
    assert set(theirs) == {'model'}
    expected = {k: v for k, v in official.items() if not _DROPPED.search(k)}
    assert set(theirs['model']) == set(expected)
    assert all(torch.equal(theirs['model'][k], v) for k, v in expected.items())
    # the STM is guessed from the keys when --stm is omitted
    run_tool(tool, str(dst), str(back), '--reverse')
    assert set(torch.load(back, map_location='cpu')['model']) == set(expected)


def test_official_cli_ema_and_errors(tmp_path):
    official = official_state_dict('dwconv', 'micro')
    ema = {k: v + 1 if v.is_floating_point() else v for k, v in official.items()}
    src = tmp_path / 'train_ckpt.pth'
    torch.save({'model': official, 'model_ema': ema}, src)
    tool = osp.join(ROOT, 'tools/model_converters/official_to_stm_mm.py')
    run_tool(tool, str(src), str(tmp_path / 'ema.pth'), '--ema')
    ours = torch.load(tmp_path / 'ema.pth', map_location='cpu')['state_dict']
    assert torch.equal(ours['head.fc.weight'], ema['head.weight'])
    assert torch.load(tmp_path / 'ema.pth')['meta']['weights'] == 'ema'
    torch.save({'state_dict': {}}, tmp_path / 'not_theirs.pth')
    with pytest.raises(SystemExit) as info:
        run_tool(tool, str(tmp_path / 'not_theirs.pth'), str(tmp_path / 'x.pth'))
    assert info.value.code == 2
    assert not (tmp_path / 'x.pth').exists()
