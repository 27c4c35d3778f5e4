"""UnifiedBackbone: exact parameter counts, shapes at any input size, gradients, errors."""
import os

import pytest
import torch
from mmengine.config import Config

from stm_mm.models import ARCH_ZOO, SCALES, STM_NAMES, UnifiedBackbone

from .. import ROOT
from ..official_keys import OFFICIAL_PARAMS


def model_config(stm, scale):
    return Config.fromfile(os.path.join(ROOT, f'configs/_base_/models/u_{stm}_{scale}.py'))


@pytest.mark.parametrize('stm,scale', sorted(OFFICIAL_PARAMS))
def test_parameter_count_equals_authors(stm, scale, meta_model):
    """The model config is the authors' model; its ImageNet config (test_classifier_configs.py
    builds it) uses it unchanged, so the session's one build of that config is counted here."""
    in1k = os.path.join(ROOT, f'configs/cls/u_{stm}_{scale}_in1k.py')
    assert Config.fromfile(in1k).model.to_dict() == model_config(stm, scale).model.to_dict()
    model = meta_model(in1k)
    assert sum(p.numel() for p in model.parameters()) == OFFICIAL_PARAMS[(stm, scale)]


def micro(stm, **kwargs):
    return UnifiedBackbone(stm=stm, arch='micro', **kwargs)


@pytest.mark.parametrize('stm', STM_NAMES)
@pytest.mark.parametrize('size', [(64, 64), (97, 131), (32, 45)])
def test_forward_shapes_any_size(stm, size):
    model = micro(stm, out_indices=(0, 1, 2, 3)).eval()
    H, W = size
    with torch.no_grad():
        outs = model(torch.randn(2, 3, H, W))
    dims = ARCH_ZOO[stm]['micro']['dims']
    for i, out in enumerate(outs):
        side = lambda n: -(-n // 2**(i + 2))  # noqa: E731  (ceil of repeated halving)
        assert out.shape == (2, dims[i], side(H), side(W))
        assert torch.isfinite(out).all()


@pytest.mark.parametrize('stm', STM_NAMES)
def test_forward_224_and_detection_mode(stm):
    cls_model = micro(stm).eval()
    det_model = micro(stm, norm_placement='output', out_indices=(0, 1, 2, 3),
                      pos_embed_in_residual=False,
                      stm_cfg=dict(shift_single_window=True) if stm == 'swin' else None).eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert cls_model(x)[0].shape == (1, 256, 7, 7)
        assert [o.shape[-1] for o in det_model(x)] == [56, 28, 14, 7]
    assert not hasattr(det_model, 'stage_norms')
    assert sorted(det_model.out_norms) == ['0', '1', '2', '3']


@pytest.mark.parametrize('stm', STM_NAMES)
def test_gradients_reach_every_parameter(stm):
    model = micro(stm, out_indices=(0, 1, 2, 3), layer_scale_init_value=1.0)
    outs = model(torch.randn(2, 3, 64, 64))
    sum(o.square().mean() for o in outs).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        grad = p.grad
        if name.endswith(('height_rel', 'width_rel')):
            grad = grad[6:]  # rows 0..b-2 are never indexed (spec 3.1)
        assert grad.abs().sum() > 0, name


@pytest.mark.parametrize('stm', STM_NAMES)
def test_eval_is_deterministic(stm):
    model = micro(stm, drop_path_rate=0.3).eval()
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x), rtol=0, atol=0)


def test_drop_path_schedule_and_layer_scale():
    model = UnifiedBackbone('halo', 'tiny')
    blocks = [b for s in model.stages for b in s.blocks]
    rates = [getattr(b.drop_path, 'drop_prob', 0.0) for b in blocks]
    expected = torch.linspace(0, 0.2, 12).tolist()
    assert rates == pytest.approx(expected)
    assert isinstance(blocks[0].drop_path, torch.nn.Identity)
    assert (blocks[3].gamma1 == 1e-6).all()


def test_authors_initialisation():
    model = micro('dcnv3')
    w = model.stages[0].blocks[0].mixer.sampling_offsets.weight
    assert 0.015 < w.std() < 0.025  # the global N(0, 0.02^2) pass overrides DCN's zero init
    assert (model.stages[0].blocks[0].mixer.sampling_offsets.bias == 0).all()


def test_buffers_are_not_saved():
    for stm in ('halo', 'swin'):
        keys = micro(stm).state_dict().keys()
        assert not any('rel_index' in k or 'relative_position_index' in k for k in keys)


def test_frozen_stages_and_norm_eval():
    model = micro('swin', frozen_stages=1, out_indices=(0, 1, 2, 3), norm_placement='output')
    model.train()
    assert not any(p.requires_grad for p in model.stem.parameters())
    assert not any(p.requires_grad for p in model.stages[1].parameters())
    assert all(p.requires_grad for p in model.stages[2].parameters())
    assert not model.stages[0].training and model.stages[2].training


def test_with_cp_matches_plain():
    torch.manual_seed(0)
    plain = micro('halo', layer_scale_init_value=1.0)
    ckpt = micro('halo', layer_scale_init_value=1.0, with_cp=True)
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(1, 3, 64, 64)
    plain(x)[0].sum().backward()
    ckpt(x)[0].sum().backward()
    for (name, a), b in zip(plain.named_parameters(), ckpt.parameters()):
        torch.testing.assert_close(a.grad, b.grad, msg=name)


def test_builds_through_mmpretrain_and_mmdet_registries():
    import stm_mm  # noqa: F401
    from mmdet.registry import MODELS as DET_MODELS
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS as CLS_MODELS
    cfg = dict(type='UnifiedBackbone', stm='dwconv', arch='micro')
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        a = CLS_MODELS.build(cfg)
    with DefaultScope.overwrite_default_scope('mmdet'):
        b = DET_MODELS.build(cfg)
    assert type(a) is type(b) is UnifiedBackbone


def test_custom_arch_dict():
    model = UnifiedBackbone('swin', dict(base='micro', depths=(1, 1, 1, 1)))
    assert [len(s.blocks) for s in model.stages] == [1, 1, 1, 1]
    assert model.dims == (32, 64, 128, 256)


@pytest.mark.parametrize('kwargs,match', [
    (dict(stm='conv'),
     "Unknown spatial token mixer 'conv'; valid names: dcnv3, dwconv, halo, pvt, swin"),
    (dict(stm='halo', arch='huge'), "Unknown arch 'huge' for stm 'halo'; valid presets: micro"),
    (dict(stm='halo', arch=dict(depths=(1, 1, 1))), "arch needs 'depths' with 4 entries"),
    (dict(stm='halo', arch=dict(depth=(1, 1, 1, 1))), r"Unknown arch key\(s\) \['depth'\]"),
    (dict(stm='swin', stm_cfg=dict(window=7)),
     r"stm_cfg key\(s\) \['window'\] are not options of ShiftedWindowAttention; valid options: "
     r"\['window_size', 'shift_single_window', 'impl'\]"),
    (dict(stm='halo', norm_placement='after'), 'norm_placement must be one of'),
    (dict(stm='swin', arch=dict(depths=(1, 1, 1, 1), dims=(8, 16, 32, 64))),
     r"stm 'swin' needs num_heads \(4 entries, one per stage\) in arch"),
    (dict(stm='halo', out_indices=(4, )), 'out_indices must lie in 0..3'),
])
def test_bad_configuration_errors(kwargs, match):
    kwargs.setdefault('arch', 'micro')
    with pytest.raises((KeyError, ValueError), match=match):
        UnifiedBackbone(**kwargs)


def test_bad_input_errors():
    model = micro('dwconv')
    with pytest.raises(ValueError, match=r'expects an image batch of shape \(B, 3, H, W\), '
                       r'got \(3, 64, 64\)'):
        model(torch.randn(3, 64, 64))
    with pytest.raises(ValueError, match='built for 3 input channels but got 1'):
        model(torch.randn(2, 1, 64, 64))


def test_every_preset_has_four_stages():
    for stm in STM_NAMES:
        assert set(ARCH_ZOO[stm]) == set(SCALES)
