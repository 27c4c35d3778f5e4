"""ERF maths on known answers, and the ERF tool end to end on every token mixer."""
import importlib.util
import json
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn as nn

from stm_mm.analysis.erf import centre_response, erf_maps, erf_ratio, erf_side, log_scaled
from stm_mm.analysis.loaded_model import load_model

from .. import ROOT

STMS = ('halo', 'pvt', 'swin', 'dwconv', 'dcnv3')


def _cli():
    spec = importlib.util.spec_from_file_location(
        'erf_cli', osp.join(ROOT, 'tools', 'analysis_tools', 'erf.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _ones_conv(k, in_ch=3, out_ch=4, stride=1):
    conv = nn.Conv2d(in_ch, out_ch, k, stride=stride, padding=k // 2, bias=False)
    nn.init.ones_(conv.weight)
    return conv


@pytest.mark.parametrize('k, side', [(3, 3), (5, 5), (7, 5)])
def test_erf_of_one_conv_is_its_support(k, side):
    """A k x k all-ones conv (3 -> 4 channels) on 15x15: the centre unit's gradient is 4 (one
    per output channel) per input channel on the k x k window around pixel (7, 7), so the map is
    12 there and 0 elsewhere. ERF@50 by hand: centred odd squares hold (s/k)^2 of the total ->
    k=3: 1/9, 9/9 -> side 3; k=5: 1/25, 9/25, 25/25 -> 5; k=7: 1/49, 9/49, 25/49 >= 1/2 -> 5."""
    x = torch.randn(2, 3, 15, 15)
    maps, count = erf_maps(_ones_conv(k), [x], relu=False)
    assert count == 2 and maps.shape == (1, 15, 15)
    expected = np.zeros((15, 15))
    r = k // 2
    expected[7 - r:8 + r, 7 - r:8 + r] = 12.0
    np.testing.assert_allclose(maps[0], expected, rtol=1e-6, atol=0)
    assert set(zip(*np.nonzero(maps[0]))) == {(i, j) for i in range(7 - r, 8 + r)
                                              for j in range(7 - r, 8 + r)}
    assert erf_side(maps[0]) == side
    assert erf_ratio(maps[0]) == pytest.approx(side / 15)


def test_erf_3x3_conv_concrete_case():
    """The brief's concrete case: 3x3 all-ones conv, 15x15 input -> support rows/cols 6..8,
    ERF@50 = 3 / 15 = 0.2 (raw and with the default ReLU response on positive inputs)."""
    x = torch.rand(1, 3, 15, 15) + 0.1
    for relu in (False, True):
        maps, _ = erf_maps(_ones_conv(3), [x], relu=relu)
        rows, cols = np.nonzero(maps[0])
        assert (rows.min(), rows.max(), cols.min(), cols.max()) == (6, 8, 6, 8)
        assert erf_ratio(maps[0]) == pytest.approx(0.2)


def test_centre_unit_convention_with_stride():
    """3x3 stride-2 conv on 16x16: output 8x8, centre unit (4, 4) sits on input pixel (8, 8) =
    (16 // 2, 16 // 2), the centre of the ERF squares: support rows/cols 7..9."""
    x = torch.randn(1, 3, 16, 16)
    maps, _ = erf_maps(_ones_conv(3, stride=2), [x], relu=False)
    rows, cols = np.nonzero(maps[0])
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (7, 9, 7, 9)
    assert erf_side(maps[0]) == 3


@pytest.mark.parametrize('n, side', [(15, 11), (16, 13)])
def test_global_average_pooling_has_uniform_erf(n, side):
    """GAP: every pixel's gradient is 1 / n^2 per channel. Uniform map -> a centred odd square
    of side s holds s^2 / n^2: n=15: 9^2=81 < 112.5 <= 11^2=121 -> 11/15; n=16 (centre pixel 8,
    squares clipped at the border): 11^2=121 < 128 <= 13^2=169 -> 13/16."""
    def gap(x):
        return x.mean(dim=(2, 3), keepdim=True)

    maps, _ = erf_maps(gap, [torch.randn(3, 2, n, n)], relu=False)
    np.testing.assert_allclose(maps[0], np.full((n, n), 2.0 / n**2), rtol=1e-6)
    assert erf_side(maps[0]) == side
    assert erf_ratio(maps[0]) == pytest.approx(side / n)
    assert erf_ratio(maps[0], 0.99) == 1.0
    assert erf_side(maps[0], 1e-9) == 1


def test_erf_side_edge_cases():
    delta = np.zeros((9, 9))
    delta[4, 4] = 1
    assert erf_side(delta) == 1
    assert erf_side(np.zeros((9, 9))) == 0
    corner = np.zeros((9, 9))
    corner[0, 0] = 1  # all mass in a corner: only the whole image holds it
    assert erf_side(corner) == 9
    half = np.zeros((5, 5))
    half[2, 2], half[0, 2] = 1, 1  # exactly 50% in the centre pixel: >= counts
    assert erf_side(half) == 1
    assert erf_side(half, 0.51) == 5
    with pytest.raises(ValueError):
        erf_side(np.zeros(4))
    np.testing.assert_allclose(log_scaled(np.array([[1.0, 0.1, 0.0]])), [[0, -1, -3]])


def test_batch_gives_each_images_own_gradient():
    """One backward pass of the summed responses = the mean of per-image maps."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.GELU(), nn.Conv2d(8, 8, 3, padding=1))
    x = torch.randn(3, 3, 11, 11)
    together, _ = erf_maps(net, [x])
    alone = np.mean([erf_maps(net, [x[i:i + 1]])[0] for i in range(3)], axis=0)
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-9)
    split, count = erf_maps(net, [x[:1], x[1:]])
    assert count == 3
    np.testing.assert_allclose(split, together, rtol=1e-5, atol=1e-9)


def test_plain_channel_sum_vanishes_after_layernorm():
    """Why the ReLU response is the default: stage outputs end in a LayerNorm over channels, and
    with unit weight / zero bias their channel sum is identically 0."""
    from stm_mm.models import UnifiedBackbone
    model = UnifiedBackbone('dwconv', arch='micro', out_indices=(0, 3)).eval()
    x = torch.randn(1, 3, 32, 32)
    assert centre_response(model(x)[0]).abs().max() < 1e-4
    plain, _ = erf_maps(model, [x], relu=False)
    rectified, _ = erf_maps(model, [x], relu=True)
    assert plain.max() < 1e-3 * rectified.max()
    assert (rectified.reshape(2, -1).sum(1) > 0).all()


@pytest.mark.slow
@pytest.mark.parametrize('stm', STMS)
def test_erf_tool_end_to_end(stm, tmp_path):
    """The CLI on each initialised micro model at 64x64: erf.json is exactly {"0".."3": ERF@50}
    and a heat map per stage is written; ERF grows (weakly) with depth."""
    out = tmp_path / stm
    _cli().main([osp.join(ROOT, f'configs/_base_/models/u_{stm}_micro.py'), 'none',
                 '--input-size', '64', '--num-images', '2', '--batch-size', '2',
                 '--out-dir', str(out), '--no-progress'])
    with open(out / 'erf.json') as f:
        erf = json.load(f)
    assert list(erf) == ['0', '1', '2', '3']
    assert all(0 < v <= 1 for v in erf.values())
    values = [erf[k] for k in '0123']
    assert values == sorted(values)
    for i in range(4):
        assert (out / f'erf_stage{i}.png').stat().st_size > 1000
    details = json.loads((out / 'erf_details.json').read_text())
    assert details['settings']['input_size'] == 64


@pytest.mark.slow
def test_erf_compare_and_checkpoint(tmp_path):
    """--compare draws two models in one figure; a saved MMEngine checkpoint loads strictly and
    gives the same ERF as the weights it came from."""
    cfg = osp.join(ROOT, 'configs/_base_/models/u_dwconv_micro.py')
    loaded = load_model(cfg, None)
    with torch.no_grad():
        for p in loaded.model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    ckpt = tmp_path / 'model.pth'
    torch.save({'meta': {}, 'state_dict': loaded.model.state_dict()}, ckpt)
    out = tmp_path / 'cmp'
    _cli().main([cfg, str(ckpt), '--compare', f'{cfg}:none:initialised', '--input-size', '32',
                 '--num-images', '1', '--data', 'noise', '--out-dir', str(out), '--no-progress'])
    compare = json.loads((out / 'erf_compare.json').read_text())
    assert list(compare) == ['U-DWConv-micro', 'initialised']
    assert json.loads((out / 'erf.json').read_text()) == compare['U-DWConv-micro']
    assert (out / 'erf_compare.png').stat().st_size > 1000
    reloaded = load_model(cfg, str(ckpt))
    for (k, a), b in zip(loaded.model.state_dict().items(),
                         reloaded.model.state_dict().values()):
        assert torch.equal(a, b), k
