"""UnifiedBackbone: the paper's unified architecture with a swappable spatial token mixer."""
import copy
import inspect

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from torch.nn.modules.batchnorm import _BatchNorm

from ..registry import MODELS, TOKEN_MIXERS
from .mixers import TokenMixer, mixer_spec
from .block import BLOCK_TYPES, AbsolutePositionEmbedding, Stage
from .downsample import DOWNSAMPLE_TYPES, build_stem, build_transition
from .utils import LayerNorm2d

NORM_PLACEMENTS = ('stage', 'output', 'last', 'none')


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f'{name} must be one of {tuple(choices)}, got {value!r}')


@MODELS.register_module()
class UnifiedBackbone(BaseModule):
    """The unified backbone of "Demystify Transformers & Convolutions" (TPAMI 2025).

    Overlapped 3x3 stride-2 stem (two convs) and transitions, four stages of pre-norm blocks
    around one spatial token mixer (STM), LayerNorm after every stage. Each stride-2 layer maps a
    side ``n`` to ``ceil(n / 2)``, so stage ``i`` of an ``(H, W)`` image is
    ``(ceil(H / 2^(i+2)), ceil(W / 2^(i+2)))`` for any input size.

    Args:
        stm: mixer name in ``TOKEN_MIXERS``: ``'halo'``, ``'pvt'``, ``'swin'``, ``'dwconv'``,
            ``'dcnv3'`` (or one registered by the user).
        arch: ``'micro'``, ``'tiny'``, ``'small'``, ``'base'`` (the preset of that STM), or a
            dict with ``depths``, ``dims`` and, as needed, ``num_heads``, ``mlp_ratios``,
            ``abs_pos_embed``, ``drop_path_rate``; a dict may also start from a preset with
            ``base='tiny'`` and override some keys.
        stm_cfg: extra keyword options of the mixer (e.g. ``dict(window_size=7)`` for Swin).
        in_channels: image channels.
        img_size: training image side; sizes the absolute position table (U-PVT) only.
        drop_path_rate: stochastic depth, linearly increasing over blocks; None takes the
            preset's ImageNet value.
        layer_scale_init_value: initial layer-scale value (1e-6).
        out_indices: stages whose feature maps are returned, ``(B, C_i, H_i, W_i)`` each.
        norm_placement: ``'stage'`` puts a LayerNorm after every stage on the main path (the
            authors' classification model); ``'output'`` normalises only the returned maps with
            fresh ``out_norms`` (their detection backbone); ``'last'`` only after the last stage
            (original Swin/ConvNeXt); ``'none'`` has none.
        pos_embed_in_residual: U-PVT only. True adds the position embedding to the residual
            stream (classification); False only to the first block's mixer input (detection).
        frozen_stages: stages ``0..frozen_stages`` (and the stem) are frozen; -1 freezes nothing.
        downsample: stem and transitions: ``'overlap'`` (unified 3x3 stride-2 design),
            ``'patch_merging'`` (Swin's 4x4 patch embedding and 2x2 patch merging) or
            ``'convnext'`` (ConvNeXt's 4x4 and 2x2 strided convs) (Table II, stage design).
        block_type: ``'unified'`` (pre-norm transformer block), ``'convnext'`` (one residual,
            norm after the mixer) or ``'bottleneck'`` (HaloNet's ResNet-style block).
        norm_eval: keep BatchNorm layers in eval mode while training.
        with_cp: gradient checkpointing of every block.
        init_cfg: MMEngine init config, e.g. ``dict(type='Pretrained', checkpoint=...)``.
            None gives the authors' initialisation.

    Hooks (Grad-CAM, feature extraction): the stem, ``transitions.k``, ``stages.i`` and the
    norms after them (``stage_norms.i``, ``out_norms.i``, ``last_norm``) all output
    channels-first maps ``(B, C, H_i, W_i)``; the blocks inside a stage
    (``stages.i.blocks.j``) and their layers work on channels-last maps ``(B, H_i, W_i, C)``.
    """

    def __init__(self, stm='halo', arch='tiny', stm_cfg=None, in_channels=3, img_size=224,
                 drop_path_rate=None, layer_scale_init_value=1e-6, out_indices=(3, ),
                 norm_placement='stage', pos_embed_in_residual=True, downsample='overlap',
                 block_type='unified', frozen_stages=-1, norm_eval=False, with_cp=False,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.stm = stm
        self.arch_settings = self.resolve_arch(stm, arch)
        depths = self.arch_settings['depths']
        dims = self.arch_settings['dims']
        heads = self.arch_settings['num_heads'] or (None, ) * 4
        mlp_ratios = self.arch_settings['mlp_ratios']
        if drop_path_rate is None:
            drop_path_rate = self.arch_settings['drop_path_rate']
        _check_choice('norm_placement', norm_placement, NORM_PLACEMENTS)
        _check_choice('downsample', downsample, DOWNSAMPLE_TYPES)
        _check_choice('block_type', block_type, BLOCK_TYPES)
        block_cls = BLOCK_TYPES[block_type]
        out_indices = (out_indices, ) if isinstance(out_indices, int) else tuple(out_indices)
        for index in out_indices:
            if not 0 <= index < 4:
                raise ValueError(f'out_indices must lie in 0..3, got {out_indices}')
        self.in_channels = in_channels
        self.dims = tuple(dims)
        self.out_indices = out_indices
        self.norm_placement = norm_placement
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        mixer_cls = TOKEN_MIXERS.get(stm)
        stm_cfg = dict(stm_cfg or {})
        self._check_stm_cfg(mixer_cls, stm_cfg)
        heads_param = inspect.signature(mixer_cls.__init__).parameters.get('num_heads')
        if self.arch_settings['num_heads'] is None and heads_param is not None and \
                heads_param.default is inspect.Parameter.empty:
            raise ValueError(f'stm {stm!r} needs num_heads (4 entries, one per stage) in arch')

        self.stem = build_stem(downsample, in_channels, dims[0])
        self.transitions = nn.ModuleList(
            build_transition(downsample, dims[i - 1], dims[i]) for i in range(1, 4))

        rates = torch.linspace(0, drop_path_rate, sum(depths), device='cpu').tolist()
        self.stages = nn.ModuleList()
        for i in range(4):
            blocks = []
            for j in range(depths[i]):
                mixer = mixer_cls(dims[i], heads[i], stage_index=i, block_index=j, **stm_cfg)
                blocks.append(
                    block_cls(dims[i], mixer, mlp_ratios[i], rates[sum(depths[:i]) + j],
                              layer_scale_init_value, mixer_cls.block_norm_eps))
            pos_embed = None
            if self.arch_settings['abs_pos_embed']:
                pos_embed = AbsolutePositionEmbedding(dims[i], img_size // 2**(i + 2))
            self.stages.append(Stage(blocks, pos_embed, pos_embed_in_residual, with_cp))

        if norm_placement == 'stage':
            self.stage_norms = nn.ModuleList(LayerNorm2d(d, eps=1e-6) for d in dims)
        elif norm_placement == 'output':
            self.out_norms = nn.ModuleDict(
                {str(i): LayerNorm2d(dims[i], eps=1e-6)
                 for i in out_indices})
        elif norm_placement == 'last':
            self.last_norm = LayerNorm2d(dims[3], eps=1e-6)
        self._reset_parameters()
        self._freeze_stages()

    @staticmethod
    def resolve_arch(stm, arch):
        """Preset or dict -> the full arch dict; clear errors for unknown names."""
        presets = mixer_spec(stm).presets  # KeyError naming the valid mixers
        if isinstance(arch, str):
            if arch not in presets:
                valid = ', '.join(presets) or 'none (pass arch as a dict)'
                raise KeyError(f'Unknown arch {arch!r} for stm {stm!r}; valid presets: {valid}, '
                               'or a dict with depths and dims')
            return copy.deepcopy(presets[arch])
        if not isinstance(arch, dict):
            raise TypeError(f'arch must be a preset name or a dict, got {type(arch).__name__}')
        arch = dict(arch)
        base = arch.pop('base', None)
        settings = dict(num_heads=None, mlp_ratios=(4, 4, 4, 4), abs_pos_embed=False,
                        drop_path_rate=0.0)
        if base is not None:
            settings.update(UnifiedBackbone.resolve_arch(stm, base))
        unknown = set(arch) - {'depths', 'dims', 'num_heads', 'mlp_ratios', 'abs_pos_embed',
                               'drop_path_rate'}
        if unknown:
            raise KeyError(f'Unknown arch key(s) {sorted(unknown)}; valid: depths, dims, '
                           'num_heads, mlp_ratios, abs_pos_embed, drop_path_rate, base')
        settings.update(arch)
        for key in ('depths', 'dims'):
            if key not in settings or len(settings[key]) != 4:
                raise ValueError(f'arch needs {key!r} with 4 entries (one per stage)')
        return settings

    @staticmethod
    def _check_stm_cfg(mixer_cls, stm_cfg):
        params = inspect.signature(mixer_cls.__init__).parameters
        fixed = {'self', 'dim', 'num_heads', 'stage_index', 'block_index'}
        valid = [name for name in params if name not in fixed]
        unknown = sorted(set(stm_cfg) - set(valid))
        if unknown:
            raise KeyError(f'stm_cfg key(s) {unknown} are not options of {mixer_cls.__name__}; '
                           f'valid options: {valid}')

    def _reset_parameters(self):
        """The authors' initialisation: every Conv2d/Linear weight ~ N(0, 0.02^2) truncated at
        +-2, bias 0; norms 1/0; then mixer- and block-specific tensors (relative tables, layer
        scales, position embeddings) by their owners."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, std=0.02, a=-2, b=2)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.LayerNorm, _BatchNorm)):
                m.reset_parameters()
        for m in self.modules():
            if isinstance(m, TokenMixer):
                m.init_weights()
            elif hasattr(m, 'reset_block_parameters'):
                m.reset_block_parameters()
            elif isinstance(m, AbsolutePositionEmbedding):
                nn.init.trunc_normal_(m.weight, std=0.02)

    def init_weights(self):
        if self.init_cfg is None:
            self._reset_parameters()
            self._is_init = True
        else:
            super().init_weights()

    def _check_input(self, x):
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f'{type(self).__name__} expects an image batch of shape '
                             f'(B, {self.in_channels}, H, W), got {shape}')
        if x.shape[1] != self.in_channels:
            raise ValueError(f'{type(self).__name__} was built for {self.in_channels} input '
                             f'channels but got {x.shape[1]} (input shape {tuple(x.shape)}); '
                             'set in_channels or fix the data pipeline')

    def forward(self, x):
        """``(B, in_channels, H, W)`` -> tuple of ``(B, dims[i], H_i, W_i)`` for ``out_indices``."""
        self._check_input(x)
        x = self.stem(x)
        outs = []
        for i, stage in enumerate(self.stages):
            if i > 0:
                x = self.transitions[i - 1](x)
            x = stage(x)  # a channels-first view of channels-last memory
            if self.norm_placement == 'stage':
                x = self.stage_norms[i](x)
            elif self.norm_placement == 'last' and i == 3:
                x = self.last_norm(x)
            if i in self.out_indices:
                out = self.out_norms[str(i)](x) if self.norm_placement == 'output' else x
                outs.append(out.contiguous())
        return tuple(outs)

    def _frozen_modules(self):
        if self.frozen_stages < 0:
            return []
        modules = [self.stem]
        for i in range(min(self.frozen_stages, 3) + 1):
            if i > 0:
                modules.append(self.transitions[i - 1])
            modules.append(self.stages[i])
            if self.norm_placement == 'stage':
                modules.append(self.stage_norms[i])
            elif self.norm_placement == 'output' and str(i) in self.out_norms:
                modules.append(self.out_norms[str(i)])
        return modules

    def _freeze_stages(self):
        for module in self._frozen_modules():
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode=True):
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self
