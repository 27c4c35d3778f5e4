"""Models for the analyses (ERF, invariance, ONNX export): a model from a config and checkpoint
(:func:`stm_mm.apis.init_model`) with what it takes to feed it images and name it in plots."""
import os.path as osp

import numpy as np
import torch
from mmengine.config import Config

from ..apis import init_model
from ..models.mixers import mixer_spec

IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


class LoadedModel:
    """A model built from a config (and checkpoint), with what the analyses need to feed it."""

    def __init__(self, model, cfg, kind, config, checkpoint, label, mean, std):
        self.model = model
        self.cfg = cfg
        self.kind = kind  # 'cls' (mmpretrain classifier), 'det' (mmdet detector), 'backbone'
        self.config = config
        self.checkpoint = checkpoint
        self.label = label
        self.mean = mean
        self.std = std

    @property
    def backbone(self):
        return getattr(self.model, 'backbone', self.model)

    @property
    def in_channels(self):
        return getattr(self.backbone, 'in_channels', 3)

    def normalise(self, images):
        """``(B, C, H, W)`` images in [0, 255] -> the model's normalised input."""
        c = images.shape[1]
        mean = torch.as_tensor(_per_channel(self.mean, c), dtype=images.dtype,
                               device=images.device).view(1, c, 1, 1)
        std = torch.as_tensor(_per_channel(self.std, c), dtype=images.dtype,
                              device=images.device).view(1, c, 1, 1)
        return (images - mean) / std


def _per_channel(values, channels):
    values = list(values)
    if len(values) == channels:
        return values
    if channels == 1:
        return [float(np.mean(values))]
    if len(values) == 1:
        return values * channels
    raise ValueError(f'normalisation has {len(values)} values for {channels} channels')


def parse_model_spec(spec):
    """``'CONFIG:CHECKPOINT[:LABEL]'`` -> ``(config, checkpoint, label or None)``."""
    parts = spec.split(':')
    if len(parts) not in (2, 3) or not all(parts[:2]):
        raise ValueError(f'expected CONFIG:CHECKPOINT or CONFIG:CHECKPOINT:LABEL, got {spec!r} '
                         '(CHECKPOINT may be "none")')
    return parts[0], parts[1], parts[2] if len(parts) == 3 else None


def default_label(cfg, config):
    """``U-HaloNet-micro`` for a config of that backbone, else the config's file name."""
    backbone = cfg.model.get('backbone', {}) if cfg.model.get('backbone') else cfg.model
    stm = backbone.get('stm')
    arch = backbone.get('arch')
    if stm is not None:
        name = mixer_spec(stm).label
        return f'{name}-{arch}' if isinstance(arch, str) else name
    return osp.splitext(osp.basename(config))[0]


def unique_label(label, taken):
    """``label``, or ``label (2)``, ``label (3)``, ... when already in ``taken`` (updated)."""
    out, n = label, 1
    while out in taken:
        n += 1
        out = f'{label} ({n})'
    taken.add(out)
    return out


def model_kind(cfg):
    """``'cls'``, ``'det'`` or ``'backbone'``, from the config's model type."""
    model_type = str(cfg.model.get('type', ''))
    if model_type.endswith('ImageClassifier'):
        return 'cls'
    return 'backbone' if model_type.endswith('UnifiedBackbone') else 'det'


def load_model(config, checkpoint=None, device='cpu', all_stages=False, label=None, seed=0):
    """:func:`stm_mm.apis.init_model` as a :class:`LoadedModel`.

    Args:
        config: config path (classifier, detector or a bare ``UnifiedBackbone``).
        checkpoint: any checkpoint :func:`stm_mm.apis.state_dict_of` reads, or ``None`` /
            ``'none'`` for the initialised weights (the same for a given ``seed``).
        all_stages: make the backbone return all four stages (ERF), keeping the checkpoint's
            keys valid (not done for ``norm_placement='output'``, whose norms follow
            ``out_indices``).
        label: a name for plots; default from the backbone (e.g. ``U-HaloNet-micro``).
    """
    cfg = Config.fromfile(config)
    kind = model_kind(cfg)
    options = {}
    if all_stages:
        target = 'model' if cfg.model.get('backbone') is None else 'model.backbone'
        if cfg.model.get('backbone', cfg.model).get('norm_placement', 'stage') != 'output':
            options[f'{target}.out_indices'] = (0, 1, 2, 3)
    if checkpoint in ('', 'none', 'None'):
        checkpoint = None
    model = init_model(cfg, checkpoint, device, cfg_options=options, seed=seed)
    pre = cfg.model.get('data_preprocessor') or cfg.get('data_preprocessor') or {}
    return LoadedModel(model, cfg, kind, config, checkpoint, label or default_label(cfg, config),
                       tuple(pre.get('mean', IMAGENET_MEAN)), tuple(pre.get('std', IMAGENET_STD)))
