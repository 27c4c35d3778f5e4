"""Every classification config builds; the ImageNet recipe is the authors' (decay groups, lr).

Big models are built on the meta device (no memory, no init cost) for parameter counting.
"""
import glob
import os
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

import stm_mm  # noqa: F401  (registers the models)
from stm_mm.converters import stm_mm_to_official

from .. import ROOT
from ..official_keys import OFFICIAL_PARAMS, official_keys

CLS_DIR = osp.join(ROOT, 'configs', 'cls')

STMS = ('halo', 'pvt', 'swin', 'dwconv', 'dcnv3')
SCALES = ('micro', 'tiny', 'small', 'base')
ATTENTION = ('halo', 'pvt', 'swin')


def _all_cls_configs():
    paths = glob.glob(osp.join(CLS_DIR, '**', '*.py'), recursive=True)
    return sorted(p for p in paths if '_base_' not in p.split(os.sep)
                  and 'ablation' not in p.split(os.sep))


CONFIGS = _all_cls_configs()


@pytest.fixture(scope='module', autouse=True)
def _mmpretrain_scope():
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        yield


def test_config_inventory():
    names = {osp.relpath(p, CLS_DIR) for p in CONFIGS}
    for stm in STMS:
        for scale in SCALES:
            assert f'u_{stm}_{scale}_in1k.py' in names
        assert osp.join('digits', f'u_{stm}_micro_digits.py') in names


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: osp.relpath(p, CLS_DIR))
def test_config_builds(path, meta_model):
    from mmcv.transforms import Compose
    from mmengine.optim import build_optim_wrapper
    from mmpretrain.registry import TRANSFORMS

    cfg = Config.fromfile(path)
    assert cfg.default_scope == 'mmpretrain'
    assert 'stm_mm' in cfg.custom_imports['imports']

    # model (meta device: no memory even for the base models) + optimiser wrapper on it
    model = meta_model(path)
    backbone = cfg.model.backbone
    n_params = sum(p.numel() for p in model.parameters())
    if cfg.model.head.num_classes == 1000:
        assert n_params == OFFICIAL_PARAMS[(backbone.stm, backbone.arch)]
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    grouped = sum(p.numel() for g in optim_wrapper.optimizer.param_groups for p in g['params'])
    assert grouped == n_params

    # pipelines, run on a synthetic image (everything after LoadImageFromFile)
    side = cfg.test_pipeline[-2]['crop_size']
    for pipeline in (cfg.train_pipeline, cfg.test_pipeline):
        assert pipeline[0]['type'] == 'LoadImageFromFile'
        transform = Compose([TRANSFORMS.build(t) for t in pipeline[1:]])
        rng = np.random.default_rng(0)
        img = rng.integers(0, 256, (300, 260, 3), dtype=np.uint8)
        out = transform(dict(img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2],
                             gt_label=1))
        assert tuple(out['inputs'].shape) == (3, side, side)

    # dataset / dataloader / evaluator entries are complete
    for split in ('train', 'val', 'test'):
        loader = cfg[f'{split}_dataloader']
        assert loader.dataset.pipeline, split
        assert loader.batch_size > 0
    assert cfg.val_evaluator.type == 'Accuracy' and tuple(cfg.val_evaluator.topk) == (1, 5)


@pytest.mark.parametrize('stm', STMS)
def test_imagenet_recipe(stm):
    cfg = Config.fromfile(osp.join(CLS_DIR, f'u_{stm}_tiny_in1k.py'))
    attention = stm in ATTENTION
    batch, lr = (1024, 1e-3) if attention else (4096, 4e-3)
    # lr = batch / 1024 x 1e-3 on the authors' 8 GPUs; auto_scale_lr keeps that rule
    assert cfg.train_dataloader.batch_size * 8 == batch
    assert cfg.optim_wrapper.optimizer.lr == pytest.approx(batch / 1024 * 1e-3)
    assert cfg.optim_wrapper.optimizer.lr / cfg.auto_scale_lr.base_batch_size == \
        pytest.approx(1e-3 / 1024)
    opt = cfg.optim_wrapper.optimizer
    assert (opt.type, opt.betas, opt.eps, opt.weight_decay) == ('AdamW', (0.9, 0.999), 1e-8, 0.05)
    assert cfg.optim_wrapper.clip_grad.max_norm == 5.0
    assert cfg.train_cfg.max_epochs == 300
    assert cfg.model.backbone.drop_path_rate == \
        {'halo': 0.2, 'pvt': 0.1, 'swin': 0.2, 'dwconv': 0.1, 'dcnv3': 0.1}[stm]
    ema = [h for h in cfg.custom_hooks if h.type == 'DualEvalEMAHook']  # raw + EMA evaluated
    assert len(ema) == 1 and ema[0].momentum == pytest.approx(1e-4)
    types = [t['type'] for t in cfg.train_pipeline]
    assert 'ColorJitter' not in types  # inactive under RandAugment in the authors' timm
    randaug = cfg.train_pipeline[types.index('RandAugment')]
    assert (randaug.policies, randaug.magnitude_level, randaug.magnitude_std) == \
        ('timm_increasing', 9, 0.5)
    erasing = cfg.train_pipeline[types.index('TimmRandomErasing')]  # timm's rule
    assert erasing.erase_prob == 0.25

    # the lr of every iteration: warm-up start -> base after 20 epochs -> cosine to the floor
    from mmengine.registry import PARAM_SCHEDULERS
    iters_per_epoch = 10
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([param], lr=opt.lr)
    schedulers = [PARAM_SCHEDULERS.build(dict(s), default_args=dict(
        optimizer=optimizer, epoch_length=iters_per_epoch)) for s in cfg.param_scheduler]
    lrs = []
    for _ in range(300 * iters_per_epoch):
        lrs.append(optimizer.param_groups[0]['lr'])
        optimizer.step()  # (no gradient: a no-op that keeps torch's scheduler check quiet)
        for s in schedulers:
            s.step()
    start, floor = (1e-6, 1e-5) if attention else (0.0, 1e-6)
    warm = 20 * iters_per_epoch
    assert lrs[0] == pytest.approx(start, abs=1e-8)
    # (MMEngine's LinearLR arrives at the base lr one iteration before the end of warm-up,
    # timm's on it: a 1/25,000 difference with the real epoch length)
    assert lrs[warm // 2] == pytest.approx(start + (opt.lr - start) / 2, rel=1e-2)
    assert lrs[warm] == pytest.approx(opt.lr, rel=1e-6)
    total = 280 * iters_per_epoch
    for t in (total // 4, total // 2, total - 1):
        expected = floor + (opt.lr - floor) * (1 + np.cos(np.pi * t / total)) / 2
        assert lrs[warm + t] == pytest.approx(expected, rel=1e-3)


def _official_shapes(stm, model):
    """Authors' key -> shape for our parameters: the converter names each parameter, the
    authors' own key/shape lists (tests/data) give the shape."""
    official = official_keys(stm, 'micro')
    names = {}
    for name, param in model.named_parameters():
        key, = stm_mm_to_official({name: param.detach()}, stm)
        assert key in official, key
        names[name] = (key, official[key])
    return names


@pytest.mark.parametrize('stm', STMS)
def test_weight_decay_groups_match_authors(stm, meta_model):
    """Decay exactly where the authors' timm optimiser decayed (their timm optimiser's rule):
    not for 1-D parameters (in the authors' shapes), names ending in `.bias` and
    `relative_position_bias_table`; everything else."""
    from mmengine.optim import build_optim_wrapper
    path = osp.join(CLS_DIR, f'u_{stm}_micro_in1k.py')
    cfg = Config.fromfile(path)
    model = meta_model(path)
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    decay_of = {}
    for group in optim_wrapper.optimizer.param_groups:
        for p in group['params']:
            decay_of[id(p)] = group['weight_decay']
    official = _official_shapes(stm, model)
    decayed, not_decayed = set(), set()
    for name, param in model.named_parameters():
        key, shape = official[name]
        authors_no_decay = (len(shape) == 1 or key.endswith('.bias')
                            or 'relative_position_bias_table' in key)
        expected = 0.0 if authors_no_decay else 0.05
        assert decay_of[id(param)] == pytest.approx(expected), (name, key, shape)
        (not_decayed if authors_no_decay else decayed).add(name)

    # the facts behind it, spelled out
    gammas = {n for n in decayed | not_decayed if n.endswith(('gamma1', 'gamma2'))}
    assert gammas
    if stm in ('halo', 'dwconv'):
        assert gammas <= decayed
    else:
        assert gammas <= not_decayed
    assert 'head.fc.weight' in decayed and 'head.fc.bias' in not_decayed
    assert {'neck.bn.weight', 'neck.bn.bias', 'neck.conv.weight'} & not_decayed == \
        {'neck.bn.weight', 'neck.bn.bias'}
    assert all(n in not_decayed for n in model.state_dict() if 'norm' in n and
               n in dict(model.named_parameters()))
    if stm == 'pvt':
        assert 'backbone.stages.0.pos_embed.weight' in decayed
    if stm == 'swin':
        tables = {n for n in decayed | not_decayed if 'relative_position_bias_table' in n}
        assert tables and tables <= not_decayed
    if stm == 'halo':
        assert 'backbone.stages.0.blocks.0.mixer.height_rel' in decayed
