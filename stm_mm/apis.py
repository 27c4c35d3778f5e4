"""The Python entry point: a model from a config (and checkpoint), and the weights of a checkpoint.

    from stm_mm.apis import init_model, state_dict_of
    model = init_model('configs/cls/u_halo_tiny_in1k.py', 'u_halo_tiny_in1k.pth')
    backbone = init_model('configs/det/u_halo_tiny_maskrcnn.py', part='backbone')

Like ``mmpretrain.apis.init_model`` and ``mmdet.apis.init_detector``, with three choices of its own:
the model is built in the registry of the config's ``default_scope`` (``mmpretrain`` when the
config has none, as the model-only configs); pretrained loading (``backbone.init_cfg``) is
dropped and, without a checkpoint, the model gets the authors' initialisation under a fixed seed
(the global RNG is left as it was); checkpoints are read without running code from them
(:func:`stm_mm.checkpoint_io.load_checkpoint`) and loaded strictly, with an error naming the
keys that do not fit.
"""
import copy
import logging
from collections import OrderedDict

import torch

from .checkpoint_io import load_checkpoint
from .converters import load_state_dict_checked, official_to_stm_mm

PARTS = ('model', 'backbone')
BACKBONE = 'backbone.'


def strip_module_prefix(state_dict):
    """Drop the ``module.`` prefix of wrapped models (DDP, EMA)."""
    return OrderedDict((k[7:] if k.startswith('module.') else k, v)
                       for k, v in state_dict.items())


def is_official_layout(state_dict):
    """True for the authors' flat classification keys (``downsample_layers.*``, ``stages.i.j.*``)."""
    return any(k.startswith('downsample_layers.') for k in state_dict)


class Weights(OrderedDict):
    """A state dict that says where it came from (like torch's ``state_dict()._metadata``).

    Attributes:
        source (str): which entry of the file, in words.
        kind (str): ``'raw'`` (training weights), ``'ema'`` or ``'unknown'`` (a bare state dict).
    """

    def __init__(self, state_dict=(), source='', kind='unknown'):  # defaults: copy, pickle
        super().__init__(state_dict)
        self.source = source
        self.kind = kind


def _recorded_kind(meta):
    """``'raw'``/``'ema'`` as stm_mm's converters record it in ``meta``, else None."""
    meta = meta if isinstance(meta, dict) else {}
    if meta.get('weights') in ('raw', 'ema'):
        return meta['weights']
    return {'model': 'raw', 'model_ema': 'ema'}.get(meta.get('source_weights'))


def _candidates(checkpoint):
    """``{kind: (state_dict, source)}`` of the weight sets a checkpoint holds."""
    if isinstance(checkpoint.get('state_dict'), dict):
        state = checkpoint['state_dict']
        ema_state = checkpoint.get('ema_state_dict')
        if not isinstance(ema_state, dict):
            kind = _recorded_kind(checkpoint.get('meta')) or 'raw'
            return {kind: (state, f'`state_dict` ({kind} weights; no EMA in the file)')}
        # EMAHook.before_save_checkpoint swaps them: the EMA in `state_dict`, the raw weights in
        # `ema_state_dict` as `module.<key>` (next to the EMA's own `steps` counter)
        raw = {k[7:]: v for k, v in ema_state.items() if k.startswith('module.')}
        if set(raw) != set(state):
            raise ValueError('`ema_state_dict` does not hold `module.<key>` for every key of '
                             '`state_dict`: not a checkpoint written by MMEngine\'s EMAHook')
        return dict(
            ema=(state, 'MMEngine checkpoint with EMA: EMA weights from `state_dict` (EMAHook '
                 'swaps them in before saving)'),
            raw=(raw, 'MMEngine checkpoint with EMA: raw weights from `ema_state_dict` (EMAHook '
                 'swaps them there before saving, as `module.<key>`)'))
    authors = {kind: (checkpoint[key], f"authors' checkpoint: `{key}`")
               for kind, key in (('raw', 'model'), ('ema', 'model_ema'))
               if isinstance(checkpoint.get(key), dict)}
    return authors or {'unknown': (checkpoint, 'bare state dict')}


def state_dict_of(checkpoint, prefer='ema', strict=False):
    """The weights of a checkpoint, in stm_mm's layout, as a :class:`Weights` state dict.

    Reads MMEngine checkpoints (with or without ``EMAHook``), the authors' (``model`` /
    ``model_ema``; their flat keys are converted), stm_mm's converter outputs and bare state
    dicts; ``module.`` prefixes are dropped.

    Args:
        checkpoint (dict): what :func:`stm_mm.checkpoint_io.load_checkpoint` returns.
        prefer (str): ``'ema'`` (what ``tools/test.py`` evaluates) or ``'raw'`` (the training
            weights, what the authors' detector starts from). A file with one set gives it.
        strict (bool): raise ``ValueError`` when the file does not hold ``prefer`` weights.
    """
    if prefer not in ('ema', 'raw'):
        raise ValueError(f"prefer must be 'ema' or 'raw', got {prefer!r}")
    if not isinstance(checkpoint, dict):
        raise ValueError(f'expected a checkpoint dict, got {type(checkpoint).__name__}; fix: '
                         'read the file with stm_mm.checkpoint_io.load_checkpoint')
    found = _candidates(checkpoint)
    kind = prefer if prefer in found else next(iter(found))
    state_dict, source = found[kind]
    if strict and kind != prefer and (prefer == 'ema' or kind == 'ema'):
        fix = "drop --ema / use weights='raw'" if prefer == 'ema' else \
            "pass --ema / use weights='ema'"
        raise ValueError(f'{prefer} weights were asked for, but the checkpoint holds {kind} '
                         f'weights only ({source}); fix: {fix}')
    state_dict = strip_module_prefix(state_dict)
    if is_official_layout(state_dict):
        state_dict = official_to_stm_mm(state_dict)
        source += " (authors' key layout, converted with stm_mm.converters.official_to_stm_mm)"
    return Weights(state_dict, source, kind)


def _quiet_init(model):
    """``model.init_weights()`` without MMEngine's per-parameter log lines."""
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)


def _read_config(config, cfg_options):
    from mmengine.config import Config
    if isinstance(config, str):
        cfg = Config.fromfile(config)
    elif isinstance(config, Config):
        cfg = copy.deepcopy(config)
    else:
        raise TypeError(f'config must be a file path or an mmengine Config, got '
                        f'{type(config).__name__}')
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if not isinstance(cfg.get('model'), dict):
        raise ValueError('the config has no `model`; fix: pass a model, classification or '
                         'detection config (configs/_base_/models, configs/cls, configs/det)')
    return cfg


def _model_registry(scope):
    if scope == 'mmdet':
        from mmdet.registry import MODELS
    elif scope == 'mmpretrain':
        from mmpretrain.registry import MODELS
    else:
        raise ValueError(f"default_scope {scope!r} is not one stm_mm builds in; fix: set "
                         "default_scope = 'mmpretrain' or 'mmdet' in the config")
    return MODELS


def init_model(config, checkpoint=None, device='cpu', part='model', cfg_options=None, seed=0):
    """Build the model of a config and load a checkpoint into it (eval mode).

    Args:
        config (str | Config): model, classification (mmpretrain) or detection (mmdet) config.
        checkpoint (str | dict, optional): a file or a loaded checkpoint (any layout
            :func:`state_dict_of` reads; its EMA weights when it has them), loaded strictly.
            None: initialised weights (the same for a given ``seed``).
        device (str): ``'cpu'``, ``'cuda'``, ... or ``'meta'`` (shapes only, no weights).
        part (str): ``'model'`` (the classifier or detector) or ``'backbone'`` (only it is built;
            a full model's checkpoint gives its ``backbone.*`` weights).
        cfg_options (dict, optional): config overrides, e.g. ``{'model.backbone.with_cp': True}``.
        seed (int): seed of the initialisation.

    Returns:
        nn.Module: with ``cfg`` (the config it was built from) attached.
    """
    from mmengine.registry import DefaultScope

    import stm_mm  # noqa: F401  (registers UnifiedBackbone)
    if part not in PARTS:
        raise ValueError(f'part must be one of {PARTS}, got {part!r}')
    cfg = _read_config(config, cfg_options)
    model_cfg = copy.deepcopy(cfg.model)
    if str(model_cfg.get('type', '')).endswith('ImageClassifier'):
        model_cfg.pop('train_cfg', None)  # batch augments: training only
        model_cfg.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
    # the checkpoint, not a pretrained file, loads (a bare backbone config is its own backbone)
    (model_cfg.get('backbone') or model_cfg).init_cfg = None
    if part == 'backbone' and model_cfg.get('backbone') is not None:
        model_cfg = model_cfg.backbone
    scope = cfg.get('default_scope') or 'mmpretrain'
    with DefaultScope.overwrite_default_scope(scope):
        registry = _model_registry(scope)
        if device == 'meta':
            with torch.device('meta'):
                model = registry.build(model_cfg)
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                model = registry.build(model_cfg)
                if checkpoint is None and hasattr(model, 'init_weights'):
                    _quiet_init(model)
    if checkpoint is not None:
        state_dict = state_dict_of(load_checkpoint(checkpoint)
                                   if isinstance(checkpoint, str) else checkpoint)
        if part == 'backbone' and any(k.startswith(BACKBONE) for k in state_dict):
            state_dict = {k[len(BACKBONE):]: v for k, v in state_dict.items()
                          if k.startswith(BACKBONE)}
        load_state_dict_checked(model, state_dict)
    model.cfg = cfg
    return model.to(device).eval()
