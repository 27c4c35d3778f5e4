"""stm_mm.apis: init_model builds any config in its registry scope, without pretrained loading,
seeded, and loads checkpoints strictly; state_dict_of reads every checkpoint layout."""
import copy
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from stm_mm.apis import init_model, state_dict_of

from . import ROOT

DET_CONFIG = osp.join(ROOT, 'configs/det/digit_scenes/u_dwconv_micro_maskrcnn_digits.py')
OFFICIAL_KEY = 'downsample_layers.0.stem.0.weight'  # the authors' name of backbone.stem.0.weight


def tiny_model_config(**extra):
    """A model-only config (no default_scope) of a tiny classifier."""
    model = dict(type='ImageClassifier',
                 backbone=dict(type='UnifiedBackbone', stm='dwconv', img_size=32,
                               arch=dict(depths=(1, 1, 1, 1), dims=(8, 16, 32, 64))),
                 neck=dict(type='GlobalAveragePooling'),
                 head=dict(type='LinearClsHead', num_classes=2, in_channels=64))
    return Config(dict(custom_imports=dict(imports=['stm_mm']), model=model, **extra))


def assert_same_weights(a, b):
    assert list(a) == list(b)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


def test_model_only_config_is_initialised_the_same_every_time():
    rng = torch.random.get_rng_state()
    model = init_model(tiny_model_config())
    torch.testing.assert_close(torch.random.get_rng_state(), rng)  # the global RNG untouched
    assert type(model).__name__ == 'ImageClassifier' and not model.training
    assert model.cfg.model.backbone.stm == 'dwconv'
    assert_same_weights(model.state_dict(), init_model(tiny_model_config()).state_dict())
    other = init_model(tiny_model_config(), seed=1).state_dict()
    assert not torch.equal(other['head.fc.weight'], model.state_dict()['head.fc.weight'])


def test_classification_config_drops_training_bits():
    """Batch augments go; the config's top-level data_preprocessor goes into the model, as the
    runner and mmpretrain.apis.init_model do; cfg_options apply."""
    cfg = tiny_model_config(
        default_scope='mmpretrain',
        data_preprocessor=dict(num_classes=2, mean=[127.5] * 3, std=[127.5] * 3))
    cfg.model.train_cfg = dict(augments=[dict(type='Mixup', alpha=0.8)])
    model = init_model(cfg, cfg_options={'model.head.num_classes': 3})
    assert model.data_preprocessor.batch_augments is None
    torch.testing.assert_close(model.data_preprocessor.mean.flatten(), torch.full((3, ), 127.5))
    assert model.head.fc.out_features == 3
    assert cfg.model.head.num_classes == 2  # the caller's config is left as it was


def test_detection_config_in_mmdet_scope_without_its_pretrained_file(tmp_path):
    """The digit-scenes detector's backbone starts from a classification checkpoint
    (PretrainedClassifier), here one that does not exist: init_model does not read it."""
    assert Config.fromfile(DET_CONFIG).model.backbone.init_cfg.type == 'PretrainedClassifier'
    absent = {'model.backbone.init_cfg.checkpoint': str(tmp_path / 'absent.pth')}
    backbone = init_model(DET_CONFIG, part='backbone', cfg_options=absent)  # runs init_weights
    assert type(backbone).__name__ == 'UnifiedBackbone'
    detector = init_model(DET_CONFIG, device='meta')
    assert type(detector).__name__ == 'MaskRCNN' and detector.cfg.default_scope == 'mmdet'
    assert list(backbone.state_dict()) == [k[len('backbone.'):] for k in detector.state_dict()
                                           if k.startswith('backbone.')]


def test_checkpoint_round_trip(tmp_path):
    """A DDP-wrapped model's file (``module.`` keys) loads strictly, whole or backbone only."""
    cfg = tiny_model_config()
    trained = init_model(cfg, seed=3).state_dict()
    path = str(tmp_path / 'model.pth')
    torch.save(dict(meta=dict(), state_dict={f'module.{k}': v for k, v in trained.items()}),
               path)
    assert_same_weights(init_model(cfg, path).state_dict(), trained)
    backbone = init_model(cfg, path, part='backbone').state_dict()
    assert_same_weights(backbone, {k[len('backbone.'):]: v for k, v in trained.items()
                                   if k.startswith('backbone.')})


def test_wrong_checkpoint():
    with pytest.raises(ValueError, match='^expected a checkpoint dict, got Tensor; fix: read the '
                       'file with stm_mm.checkpoint_io.load_checkpoint$'):
        init_model(tiny_model_config(), torch.zeros(2))
    with pytest.raises(KeyError, match=r'does not fit the model(.|\n)*1 unexpected: fc.weight'):
        init_model(tiny_model_config(), dict(state_dict={'fc.weight': torch.zeros(2)}))


def ema_hook_checkpoint():
    """What MMEngine's EMAHook saves: the EMA in `state_dict`, the raw weights in
    `ema_state_dict` as `module.<key>`, beside the EMA's `steps`."""
    raw, ema = {'a.weight': torch.zeros(2)}, {'a.weight': torch.ones(2)}
    return dict(state_dict=ema, ema_state_dict={'module.a.weight': raw['a.weight'],
                                                'steps': torch.tensor(5)}), raw, ema


@pytest.mark.parametrize('prefer', ['ema', 'raw'])
def test_state_dict_of_an_ema_hook_checkpoint(prefer):
    checkpoint, raw, ema = ema_hook_checkpoint()
    weights = state_dict_of(checkpoint, prefer)
    assert_same_weights(weights, dict(raw=raw, ema=ema)[prefer])
    assert weights.kind == prefer
    assert ('`state_dict`' if prefer == 'ema' else '`ema_state_dict`') in weights.source


def test_state_dict_of_the_authors_checkpoint():
    """Their keys are converted; `model` is raw, `model_ema` the EMA."""
    theirs = {'model': {OFFICIAL_KEY: torch.zeros(2)},
              'model_ema': {f'module.{OFFICIAL_KEY}': torch.ones(2)}}
    for prefer, value in (('raw', 0.0), ('ema', 1.0)):
        weights = state_dict_of(theirs, prefer)
        assert list(weights) == ['backbone.stem.0.weight'] and weights.kind == prefer
        torch.testing.assert_close(weights['backbone.stem.0.weight'], torch.full((2, ), value))
        assert copy.deepcopy(weights).kind == prefer  # it pickles


def test_state_dict_of_prefers_but_strict_requires():
    """A file with one set of weights gives it whatever is preferred, unless strict."""
    raw_only = dict(state_dict={'module.a': torch.zeros(1)}, meta=dict(weights='raw'))
    weights = state_dict_of(raw_only, 'ema')
    assert list(weights) == ['a'] and weights.kind == 'raw'
    with pytest.raises(ValueError, match='^ema weights were asked for, but the checkpoint holds '
                       'raw weights only .*; fix: drop --ema'):
        state_dict_of(raw_only, 'ema', strict=True)
    with pytest.raises(ValueError, match='holds ema weights only'):
        state_dict_of({'model_ema': {'a': torch.zeros(1)}}, 'raw', strict=True)
    bare = state_dict_of({'module.a': torch.zeros(1)}, 'raw', strict=True)
    assert list(bare) == ['a'] and bare.kind == 'unknown'
    with pytest.raises(ValueError, match="prefer must be 'ema' or 'raw'"):
        state_dict_of(raw_only, 'best')
