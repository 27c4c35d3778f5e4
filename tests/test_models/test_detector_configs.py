"""The 20 COCO Mask R-CNN configs and the 5 digit-scenes configs: contents and that they build."""
import glob
import os.path as osp

import pytest
import torch

from stm_mm.models import ARCH_ZOO, SCALES, STM_NAMES

from .. import ROOT
from ..helpers.detectors import build_detector, det_config, digits_config, register, stm_mm_to_mmdet2

ALL = [(stm, scale) for stm in STM_NAMES for scale in SCALES]
# drop-path rates of the authors' Mask R-CNN configs
DET_DROP_PATH = dict(micro=0.1, tiny=0.2, small=0.2, base=0.3)


def test_every_det_config_present_and_import_free():
    names = sorted(osp.basename(p) for p in glob.glob(osp.join(ROOT, 'configs/det/*.py')))
    assert names == sorted(f'u_{stm}_{scale}_maskrcnn.py' for stm, scale in ALL)
    for path in glob.glob(osp.join(ROOT, 'configs/**/*.py'), recursive=True):
        if '/det/' in path or '/_base_/det/' in path:
            text = open(path).read()
            assert '\nimport ' not in text and '\nfrom ' not in text and \
                not text.startswith(('import ', 'from ')), path


@pytest.mark.parametrize('stm,scale', ALL)
def test_det_config_builds(stm, scale):
    cfg = det_config(stm, scale)
    backbone = cfg.model.backbone
    assert backbone.type == 'UnifiedBackbone' and backbone.stm == stm and backbone.arch == scale
    assert backbone.norm_placement == 'output'
    assert tuple(backbone.out_indices) == (0, 1, 2, 3)
    assert backbone.drop_path_rate == DET_DROP_PATH[scale]
    assert backbone.img_size == 224
    assert backbone.init_cfg == dict(type='PretrainedClassifier', weights='raw',
                                     checkpoint=f'checkpoints/u_{stm}_{scale}_in1k.pth')
    assert backbone.get('stm_cfg', {}).get('shift_single_window', False) == (stm == 'swin')
    assert backbone.get('pos_embed_in_residual', True) == (stm != 'pvt')
    assert cfg.model.neck.in_channels == list(ARCH_ZOO[stm][scale]['dims'])
    model = build_detector(cfg, device='meta')  # structure only; fast for the base models
    assert type(model).__name__ == 'MaskRCNN'
    assert sorted(model.backbone.out_norms) == ['0', '1', '2', '3']
    assert not hasattr(model.backbone, 'stage_norms')
    assert model.roi_head.bbox_head.num_classes == 80


def test_coco_recipe():
    cfg = det_config('halo', 'tiny')
    assert cfg.train_dataloader.batch_size == 2
    assert cfg.auto_scale_lr == dict(enable=True, base_batch_size=16)
    assert cfg.randomness.seed == 0
    optim = cfg.optim_wrapper
    assert optim.type == 'OptimWrapper' and 'clip_grad' not in optim
    assert optim.optimizer == dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05)
    assert set(optim.paramwise_cfg.custom_keys) == {'absolute_pos_embed',
                                                    'relative_position_bias_table', 'norm'}
    warmup, steps = cfg.param_scheduler
    assert warmup == dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
                          end=1000)
    assert steps.type == 'MultiStepLR' and steps.milestones == [8, 11] and steps.gamma == 0.1
    assert cfg.train_cfg.max_epochs == 12
    train = [t.type for t in cfg.train_dataloader.dataset.pipeline]
    assert train == ['LoadImageFromFile', 'LoadAnnotations', 'Resize', 'RandomFlip',
                     'PackDetInputs']
    assert cfg.train_dataloader.dataset.pipeline[2].scale == (1333, 800)
    assert cfg.train_dataloader.dataset.pipeline[3].prob == 0.5
    pre = cfg.model.data_preprocessor
    assert pre.mean == [123.675, 116.28, 103.53] and pre.std == [58.395, 57.12, 57.375]
    assert pre.bgr_to_rgb and pre.pad_size_divisor == 32
    assert cfg.val_evaluator.type == 'CocoMetric'
    assert cfg.val_evaluator.metric == ['bbox', 'segm']
    assert cfg.data_root == 'data/coco/'


def _authors_name(stm, name, param):
    (key, ), = [stm_mm_to_mmdet2({'backbone.' + name: param.detach()}, stm).keys()]
    return key


@pytest.mark.parametrize('stm', STM_NAMES)
def test_weight_decay_groups_match_the_authors(stm):
    """'norm' etc. substring rule on OUR names exempts exactly what it exempted on THEIRS."""
    from mmengine.optim import build_optim_wrapper
    cfg = det_config(stm)
    model = build_detector(cfg)
    register()
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    decay = {}
    for group in wrapper.optimizer.param_groups:
        for param in group['params']:
            decay[id(param)] = group['weight_decay']
    keys = ('absolute_pos_embed', 'relative_position_bias_table', 'norm')
    for name, param in model.backbone.named_parameters():
        theirs = _authors_name(stm, name, param)
        exempt = any(k in theirs for k in keys)
        assert decay[id(param)] == (0.0 if exempt else 0.05), (name, theirs)
    named = dict(model.backbone.named_parameters())
    assert decay[id(named['stem.1.weight'])] == 0.05  # stem / transition LayerNorms decay
    assert decay[id(named['transitions.0.1.weight'])] == 0.05
    assert decay[id(named['out_norms.0.weight'])] == 0.0
    assert decay[id(named['stages.0.blocks.0.norm1.weight'])] == 0.0
    assert decay[id(named['stages.0.blocks.0.gamma1'])] == 0.05
    for name, param in model.named_parameters():
        if not name.startswith('backbone.'):
            assert decay[id(param)] == 0.05, name


@pytest.mark.parametrize('stm', STM_NAMES)
def test_digit_scenes_config_builds(stm):
    cfg = digits_config(stm)
    assert cfg.model.backbone.init_cfg.checkpoint == f'work_dirs/demo/cls_{stm}_micro.pth'
    assert cfg.model.backbone.arch == 'micro' and cfg.model.backbone.norm_placement == 'output'
    assert cfg.model.neck.in_channels == list(ARCH_ZOO[stm]['micro']['dims'])
    assert cfg.train_cfg.type == 'IterBasedTrainLoop'
    assert cfg.val_evaluator.metric == ['bbox', 'segm']
    assert cfg.train_dataloader.num_workers <= 2
    model = build_detector(cfg, device='meta')
    assert model.roi_head.bbox_head.num_classes == 10
    assert model.neck.out_channels == 64
