"""Backbone transfer classification -> detection (cls2det, Pretrained prefix) and back."""
import copy
import logging
import os.path as osp
import runpy
import sys

import pytest
import torch
from mmengine.config import Config

from stm_mm.apis import state_dict_of
from stm_mm.models import STM_NAMES
from stm_mm.transfer import (cls_to_det, det_to_cls, resize_halo_rel_table,
                             resize_swin_bias_table, transfer_cls_to_det)

from .. import ROOT
from ..helpers.detectors import build_detector, digits_config


def build_classifier(stm, **backbone):
    from mmpretrain.registry import MODELS

    import stm_mm  # noqa: F401
    cfg = Config.fromfile(osp.join(ROOT, f'configs/_base_/models/u_{stm}_micro.py'))
    cfg.model.backbone.update(dict(dict(img_size=32), **backbone))
    cfg.model.head.num_classes = 10
    cfg.model.train_cfg = None
    return MODELS.build(cfg.model)


def random_state(model, seed=0):
    """Every tensor random, so that a copied tensor cannot equal a fresh one by chance."""
    gen = torch.Generator().manual_seed(seed)
    return {k: (torch.randn(v.shape, generator=gen) if v.is_floating_point() else v.clone())
            for k, v in model.state_dict().items()}


@pytest.fixture(scope='module')
def cls_checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp('cls')
    paths = {}
    for stm in STM_NAMES:
        state = random_state(build_classifier(stm))
        paths[stm] = str(root / f'cls_{stm}_micro.pth')
        torch.save({'state_dict': state, 'meta': {'epoch': 30}}, paths[stm])
    return paths


def assert_backbone_from_cls(detector, cls_state):
    own = detector.backbone.state_dict()
    for key, value in own.items():
        if key.startswith('out_norms.'):
            assert torch.equal(value, torch.ones_like(value) if key.endswith('weight') else
                               torch.zeros_like(value)), key
        else:
            assert torch.equal(value, cls_state['backbone.' + key]), key
    assert sum(k.startswith('out_norms.') for k in own) == 8


@pytest.mark.parametrize('stm', STM_NAMES)
def test_cls2det_loads_every_backbone_key(stm, cls_checkpoints, tmp_path):
    cfg = digits_config(stm)
    dst = str(tmp_path / 'det_backbone.pth')
    result, report = transfer_cls_to_det(cls_checkpoints[stm], dst, config=cfg)
    assert all(k.startswith('backbone.') for k in result['state_dict'])
    assert not any('stage_norms' in k for k in result['state_dict'])
    assert [r[2] for r in report.keys('missing')] == [
        f'backbone.out_norms.{i}.{p}' for i in range(4) for p in ('weight', 'bias')]
    detector = build_detector(
        cfg, init_cfg=dict(type='Pretrained', checkpoint=dst, prefix='backbone.'))
    detector.init_weights()
    cls_state = torch.load(cls_checkpoints[stm], map_location='cpu')['state_dict']
    assert_backbone_from_cls(detector, cls_state)


class _Capture(logging.Handler):

    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def test_pretrained_prefix_directly_from_cls_checkpoint(cls_checkpoints):
    """init_cfg=Pretrained(prefix='backbone.') on the classification checkpoint itself."""
    from mmengine.logging import MMLogger
    cfg = digits_config('swin')
    detector = build_detector(cfg, init_cfg=dict(
        type='Pretrained', checkpoint=cls_checkpoints['swin'], prefix='backbone.'))
    capture = _Capture()
    logger = MMLogger.get_current_instance()
    logger.addHandler(capture)
    try:
        detector.init_weights()
    finally:
        logger.removeHandler(capture)
    cls_state = torch.load(cls_checkpoints['swin'], map_location='cpu')['state_dict']
    assert_backbone_from_cls(detector, cls_state)
    text = '\n'.join(capture.lines)
    assert 'unexpected key in source state_dict: stage_norms.0.weight' in text
    assert 'missing keys in source state_dict: out_norms.0.weight' in text


def ema_hook_checkpoint(model, momentum=0.5):
    """A checkpoint as written with the ImageNet configs' EMA hook (``DualEvalEMAHook``, saving
    as MMEngine's ``EMAHook``): two training steps change the weights, the EMA follows them,
    ``before_save_checkpoint`` swaps. Returns ``(checkpoint, raw state, EMA state)``."""
    from types import SimpleNamespace

    from mmpretrain.registry import HOOKS
    hook = HOOKS.build(dict(type='DualEvalEMAHook', momentum=momentum, update_buffers=True))
    runner = SimpleNamespace(model=model, iter=0, epoch=0)
    hook.before_run(runner)
    for step in range(2):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        runner.iter = step
        hook.after_train_iter(runner, step)
    raw = copy.deepcopy(model.state_dict())
    ema = copy.deepcopy(hook.ema_model.module.state_dict())
    checkpoint = dict(state_dict=copy.deepcopy(model.state_dict()), meta=dict(epoch=1))
    hook.before_save_checkpoint(runner, checkpoint)
    return checkpoint, raw, ema


def assert_same(state, reference):
    assert set(state) == set(reference)
    assert all(torch.equal(state[k], reference[k]) for k in reference)


def test_ema_hook_swap_raw_by_default():
    """MMEngine's EMAHook saves the EMA in `state_dict` and the raw weights in `ema_state_dict`
    under `module.<key>`: the default (raw, as the authors' detector) comes from the latter."""
    checkpoint, raw, ema = ema_hook_checkpoint(build_classifier('dwconv'))
    assert not torch.equal(raw['head.fc.weight'], ema['head.fc.weight'])
    assert_same(checkpoint['state_dict'], ema)  # the swap this test is about
    state = state_dict_of(checkpoint, 'raw', strict=True)
    assert state.kind == 'raw' and '`ema_state_dict`' in state.source
    assert_same(state, raw)
    state = state_dict_of(checkpoint, 'ema', strict=True)
    assert state.kind == 'ema'
    assert_same(state, ema)


def test_authors_checkpoint_raw_by_default():
    theirs = {'model': {'downsample_layers.0.stem.0.weight': torch.zeros(2)},
              'model_ema': {'module.downsample_layers.0.stem.0.weight': torch.ones(2)}}
    state = state_dict_of(theirs, 'raw', strict=True)
    assert state.kind == 'raw' and '`model`' in state.source
    assert torch.equal(state['backbone.stem.0.weight'], torch.zeros(2))
    state = state_dict_of(theirs, 'ema', strict=True)
    assert state.kind == 'ema' and torch.equal(state['backbone.stem.0.weight'], torch.ones(2))
    with pytest.raises(ValueError, match="holds raw weights only \\(authors' checkpoint: `model`"):
        state_dict_of({'model': theirs['model']}, 'ema', strict=True)
    with pytest.raises(ValueError, match='ema weights were asked for, but the checkpoint holds '
                       'raw weights only'):
        state_dict_of({'state_dict': {}}, 'ema', strict=True)


@pytest.fixture(scope='module')
def swin_ema_checkpoint(tmp_path_factory):
    checkpoint, raw, ema = ema_hook_checkpoint(build_classifier('swin'))
    path = str(tmp_path_factory.mktemp('ema') / 'cls.pth')
    torch.save(checkpoint, path)
    return path, dict(raw=raw, ema=ema)


@pytest.mark.parametrize('weights', ['raw', 'ema'])
def test_pretrained_classifier_init(weights, swin_ema_checkpoint):
    """The configs' init_cfg: the chosen weights of an EMA checkpoint end up in the detector's
    backbone exactly (nothing re-initialises them afterwards); stage norms dropped, out_norms
    fresh."""
    src, states = swin_ema_checkpoint
    detector = build_detector(digits_config('swin'), init_cfg=dict(
        type='PretrainedClassifier', checkpoint=src, weights=weights))
    detector.init_weights()
    assert_backbone_from_cls(detector, states[weights])


def test_cls2det_ema_to_safetensors(swin_ema_checkpoint, tmp_path):
    """cls2det --ema records the choice; PretrainedClassifier reads the .safetensors output and
    refuses to take it for raw weights."""
    from stm_mm.checkpoint_io import load_checkpoint
    from stm_mm.models import PretrainedClassifier
    src, states = swin_ema_checkpoint
    cfg = digits_config('swin')
    dst = str(tmp_path / 'det.safetensors')
    runpy.run_path(osp.join(ROOT, 'tools/model_converters/cls2det.py'))['main'](
        [src, dst, '--config', cfg.filename, '--ema'])
    assert load_checkpoint(dst)['meta']['weights'] == 'ema'
    detector = build_detector(cfg)
    PretrainedClassifier(dst, weights='ema')(detector.backbone)
    assert_backbone_from_cls(detector, states['ema'])
    with pytest.raises(ValueError, match='raw weights were asked for, but the checkpoint holds '
                       'ema weights only'):
        PretrainedClassifier(dst)(detector.backbone)


def test_resizing_position_tables():
    # Swin: a constant table stays constant; same window is the identity
    table = torch.randn(169, 3)
    assert torch.allclose(resize_swin_bias_table(table, 7), table, atol=1e-5)
    assert torch.allclose(resize_swin_bias_table(torch.full((169, 2), 0.5), 12),
                          torch.full((529, 2), 0.5), atol=1e-5)
    # Halo: linear with align_corners=True keeps the end rows and linear ramps
    ramp = torch.arange(25.0)[:, None].repeat(1, 4)
    out = resize_halo_rel_table(ramp, 29)
    assert torch.allclose(out[:, 0], torch.linspace(0, 24, 29), atol=1e-5)


@pytest.mark.parametrize('stm,change', [
    ('swin', dict(stm_cfg=dict(shift_single_window=True, window_size=12))),
    ('halo', dict(stm_cfg=dict(halo_size=4))),
    ('pvt', dict(img_size=224)),
])
def test_cls2det_resizes_to_another_window_or_grid(stm, change, cls_checkpoints):
    cfg = digits_config(stm)
    cfg.model.backbone.update(copy.deepcopy(change))
    cls_state = torch.load(cls_checkpoints[stm], map_location='cpu')['state_dict']
    from stm_mm.transfer import backbone_shapes
    det_state, report = cls_to_det(cls_state, backbone_shapes(cfg))
    assert report.keys('resized')
    detector = build_detector(cfg)
    missing, unexpected = detector.load_state_dict(det_state, strict=False)
    assert not unexpected
    assert [k for k in missing if k.startswith('backbone.')] == [
        f'backbone.out_norms.{i}.{p}' for i in range(4) for p in ('weight', 'bias')]
    if stm == 'pvt':  # bilinear with align_corners=True keeps the corners
        pos = det_state['backbone.stages.0.pos_embed.weight']
        src = cls_state['backbone.stages.0.pos_embed.weight']
        assert pos.shape[-2:] == (56, 56) and src.shape[-2:] == (8, 8)
        assert torch.allclose(pos[..., 0, 0], src[..., 0, 0], atol=1e-5)
        assert torch.allclose(pos[..., -1, -1], src[..., -1, -1], atol=1e-5)
    # without a target the tables are copied as they are (the model resizes PVT at run time)
    plain, _ = cls_to_det(cls_state)
    for key, value in plain.items():
        assert torch.equal(value, cls_state[key])


def test_reverse_det_to_cls(cls_checkpoints, tmp_path):
    """The detector's backbone as a classifier whose feature is the detector's stage-3 map."""
    cfg = digits_config('dwconv')
    detector = build_detector(cfg)
    detector.load_state_dict({**detector.state_dict(), **random_state(detector, seed=3)})
    cls_state = torch.load(cls_checkpoints['dwconv'], map_location='cpu')['state_dict']
    state, _ = det_to_cls(detector.state_dict(), norms='output', head_state_dict=cls_state)
    classifier = build_classifier('dwconv', norm_placement='output')
    classifier.load_state_dict(state, strict=True)
    detector.eval(), classifier.eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        assert torch.allclose(classifier.backbone(x)[0], detector.backbone(x)[3])
    # 'stage' layout: loads into the stock classification model
    state, _ = det_to_cls(detector.state_dict(), norms='stage', head_state_dict=cls_state)
    build_classifier('dwconv').load_state_dict(state, strict=True)


def test_cls2det_cli_with_authors_checkpoint(tmp_path):
    """The authors' classification checkpoint transfers directly (converted on the fly)."""
    from stm_mm.converters import stm_mm_to_official
    classifier = build_classifier('pvt', img_size=224)
    ours = random_state(classifier)
    torch.save({'model': stm_mm_to_official(ours, 'pvt')}, tmp_path / 'unified_pvt_micro.pth')
    tool = osp.join(ROOT, 'tools/model_converters/cls2det.py')
    dst = tmp_path / 'det.pth'
    old = sys.argv
    sys.argv = [tool, str(tmp_path / 'unified_pvt_micro.pth'), str(dst), '--config',
                osp.join(ROOT, 'configs/det/u_pvt_micro_maskrcnn.py')]
    try:
        runpy.run_path(tool, run_name='__main__')
        det = torch.load(dst, map_location='cpu')
        assert det['meta']['weights'] == 'raw'
        det = det['state_dict']
        for key, value in det.items():
            assert torch.equal(value, ours[key]), key
        # and back
        sys.argv = [tool, str(dst), str(tmp_path / 'cls.pth'), '--reverse', '--norms', 'stage']
        runpy.run_path(tool, run_name='__main__')
    finally:
        sys.argv = old
    back = torch.load(tmp_path / 'cls.pth', map_location='cpu')['state_dict']
    assert set(back) == set(det)
