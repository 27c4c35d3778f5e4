"""Backbone transfer between classification and detection checkpoints (pure functions + file I/O).

Classification -> detection (:func:`cls_to_det`, CLI ``tools/model_converters/cls2det.py``)
    The detection backbone is the classification backbone without its stage norms: the authors'
    detector normalises only the four returned maps with fresh LayerNorms (``out_norms.i`` here,
    ``norm_placement='output'``) and discards the pretrained ``stage_norms``. Everything else is
    copied unchanged, except position tables when the target model differs (Swin bias tables and
    Halo relative tables are interpolated to a new window, PVT position tables to a new grid).
    Classifier neck/head are dropped. The result is ``{'state_dict': {'backbone.<key>': ...},
    'meta': ...}``, loadable with ``init_cfg=dict(type='Pretrained', checkpoint=..., prefix=
    'backbone.')`` (only ``out_norms`` are then missing) or ``load_from`` (non-strict).

Detection -> classification (:func:`det_to_cls`, ``cls2det.py --reverse``)
    The detector's backbone as an mmpretrain classifier backbone, for analysis (ERF, invariance):
    the ``out_norms`` are kept (build the classifier with ``norm_placement='output'``, which
    reproduces the detector's stage-3 feature exactly) or renamed to ``stage_norms`` (the
    classification layout; an approximation because stage norms sit on the main path).

The authors' own files (their classification checkpoints, their mmdet 2.x Mask R-CNN) are
converted in :mod:`stm_mm.authors_checkpoints`.

Which weights of a classification checkpoint (:func:`stm_mm.apis.state_dict_of`, strict): the
raw training weights by default, as the authors' detector (it loads ``checkpoint['model']``); the
EMA on request (``--ema``, ``weights='ema'``). The choice is recorded as ``meta['weights']``.

Files are read with :func:`stm_mm.checkpoint_io.load_checkpoint` (never runs code from a file)
and written as ``.pth`` or ``.safetensors`` (``out_format``).
"""
import re
import re
from collections import OrderedDict

import torch.nn.functional as F

from .apis import init_model, state_dict_of, strip_module_prefix
from .checkpoint_io import load_checkpoint, save_checkpoint

BACKBONE = 'backbone.'
STAGE_NORM_REASON = ('classification stage norm (on the main path); the detection backbone '
                     "uses fresh out_norms on the returned maps instead (norm_placement='output')")
OUT_NORM_REASON = 'fresh LayerNorm of the detection backbone (weight 1, bias 0)'


def log_message(message, logger='current'):
    from mmengine.logging import print_log
    print_log(message, logger=logger)


def require_backbone(state_dict, src, what='classification backbone'):
    """Refuse a state dict without backbone weights (``backbone.stem.*`` and
    ``backbone.stages.*``) instead of writing a near-empty file."""
    if not (any(k.startswith('backbone.stem.') for k in state_dict)
            and any(k.startswith('backbone.stages.') for k in state_dict)):
        found = ', '.join(list(state_dict)[:5]) or 'no tensors'
        raise ValueError(f'{src} holds no {what} weights (found: {found}); fix: pass a '
                         'checkpoint of an stm_mm or authors\' model')


# ---------------------------------------------------------------------------------------------
# Resizing position tables


def resize_swin_bias_table(table, window_size):
    """``((2M-1)^2, heads)`` -> ``((2W-1)^2, heads)`` by bicubic interpolation (as timm/Swin)."""
    side = int(round(table.shape[0]**0.5))
    new_side = 2 * window_size - 1
    grid = table.T.reshape(1, -1, side, side).float()
    grid = F.interpolate(grid, size=(new_side, new_side), mode='bicubic', align_corners=False)
    return grid.reshape(-1, new_side * new_side).T.contiguous().to(table.dtype)


def resize_halo_rel_table(table, length):
    """``(2w-1, d)`` -> ``(length, d)`` by linear interpolation, ``align_corners=True``."""
    rows = table.T[None].float()  # (1, d, 2w-1)
    rows = F.interpolate(rows, size=length, mode='linear', align_corners=True)
    return rows[0].T.contiguous().to(table.dtype)


def resize_pos_embed(pos, size):
    """``(1, C, H0, W0)`` -> ``(1, C, H, W)``, bilinear, ``align_corners=True`` (as the model)."""
    out = F.interpolate(pos.float(), size=tuple(size), mode='bilinear', align_corners=True)
    return out.to(pos.dtype)


def _resize_to(key, value, shape):
    """Resize a position table to ``shape``; returns ``(tensor, how)`` or ``(None, why_not)``."""
    if key.endswith('mixer.relative_position_bias_table') and value.shape[1] == shape[1]:
        window = (int(round(shape[0]**0.5)) + 1) // 2
        old_window = (int(round(value.shape[0]**0.5)) + 1) // 2
        return (resize_swin_bias_table(value, window),
                f'Swin window {old_window} -> {window} (bicubic)')
    if re.search(r'mixer\.(height|width)_rel$', key) and value.shape[1] == shape[1]:
        return (resize_halo_rel_table(value, shape[0]),
                f'Halo window {(value.shape[0] + 1) // 2} -> {(shape[0] + 1) // 2} '
                '(linear, align_corners=True)')
    if key.endswith('pos_embed.weight') and value.shape[:2] == shape[:2]:
        return (resize_pos_embed(value, shape[2:]),
                f'PVT grid {tuple(value.shape[2:])} -> {tuple(shape[2:])} '
                '(bilinear, align_corners=True)')
    return None, 'shape differs and the tensor is not a resizable position table'


# ---------------------------------------------------------------------------------------------
# Classification <-> detection


class TransferReport:
    """What happened to every key: ``loaded``, ``resized``, ``renamed``, ``dropped``,
    ``missing`` (a target key the source lacks)."""

    def __init__(self):
        self.records = []  # (action, source key, target key, reason)

    def add(self, action, src, dst, reason=''):
        self.records.append((action, src, dst, reason))

    def keys(self, action):
        return [r for r in self.records if r[0] == action]

    def summary_lines(self):
        lines = []
        loaded = self.keys('loaded')
        groups = OrderedDict()
        for _, _, dst, _ in loaded:
            parts = dst.split('.')
            group = '.'.join(parts[:3] if parts[1] == 'stages' else parts[:2])
            groups[group] = groups.get(group, 0) + 1
        lines.append(f'loaded {len(loaded)} tensors unchanged: ' +
                     ', '.join(f'{g} ({n})' for g, n in groups.items()))
        for action in ('resized', 'renamed'):
            for _, src, dst, reason in self.keys(action):
                lines.append(f'{action} {src} -> {dst}: {reason}')
        by_reason = OrderedDict()
        for _, src, _, reason in self.keys('dropped'):
            by_reason.setdefault(reason, []).append(src)
        for reason, keys in by_reason.items():
            lines.append(f'dropped {len(keys)}: {_short_list(keys)} -- {reason}')
        by_reason = OrderedDict()
        for _, _, dst, reason in self.keys('missing'):
            by_reason.setdefault(reason, []).append(dst)
        for reason, keys in by_reason.items():
            lines.append(f'not in the source, left to the detector {len(keys)}: '
                         f'{_short_list(keys)} -- {reason}')
        return lines


def _short_list(keys, limit=8):
    shown = ', '.join(keys[:limit])
    return shown + (f', ... (+{len(keys) - limit} more)' if len(keys) > limit else '')


def cls_to_det(cls_state_dict, target_shapes=None):
    """Classification state dict (stm_mm layout) -> detection backbone state dict.

    Args:
        cls_state_dict: ``backbone.*`` / ``neck.*`` / ``head.*`` keys (bare backbone keys are
            accepted too).
        target_shapes: optional ``{backbone-relative key: shape}`` of the detection backbone
            (:func:`backbone_shapes`); position tables are resized to it and keys it lacks are
            dropped. Without it every backbone tensor except the stage norms is kept as is.
    Returns:
        ``(state_dict with 'backbone.' keys, TransferReport)``.
    """
    report = TransferReport()
    has_prefix = any(k.startswith(BACKBONE) for k in cls_state_dict)
    out = OrderedDict()
    for key, value in cls_state_dict.items():
        if has_prefix and not key.startswith(BACKBONE):
            report.add('dropped', key, None, 'classifier neck/head, not part of the detector')
            continue
        bkey = key[len(BACKBONE):] if has_prefix else key
        if bkey.startswith('stage_norms.'):
            report.add('dropped', key, None, STAGE_NORM_REASON)
            continue
        dst = BACKBONE + bkey
        if target_shapes is not None:
            if bkey not in target_shapes:
                report.add('dropped', key, None, 'not a parameter of the target backbone')
                continue
            shape = tuple(target_shapes[bkey])
            if tuple(value.shape) != shape:
                resized, how = _resize_to(bkey, value, shape)
                if resized is None:
                    raise ValueError(f'{key}: source shape {tuple(value.shape)} vs target '
                                     f'{shape}: {how}; is the config the same STM and scale?')
                out[dst] = resized
                report.add('resized', key, dst, how)
                continue
        out[dst] = value
        report.add('loaded', key, dst)
    if target_shapes is not None:
        for bkey in target_shapes:
            if BACKBONE + bkey not in out:
                reason = OUT_NORM_REASON if bkey.startswith('out_norms.') else \
                    'MISSING from the classification checkpoint'
                report.add('missing', None, BACKBONE + bkey, reason)
    return out, report


def det_to_cls(det_state_dict, norms='output', head_state_dict=None):
    """Detector (or detection backbone) state dict -> classifier state dict, for analysis.

    Args:
        norms: ``'output'`` keeps ``out_norms.3`` (the classifier must be built with
            ``backbone.norm_placement='output'``; its feature then equals the detector's stage-3
            output); ``'stage'`` renames ``out_norms.i`` to ``stage_norms.i`` (the classification
            layout, loads into the stock configs, but stage norms act on the main path there).
        head_state_dict: optional classifier state dict whose ``neck.*``/``head.*`` are copied.
    Returns:
        ``(state_dict, TransferReport)``.
    """
    if norms not in ('output', 'stage'):
        raise ValueError(f"norms must be 'output' or 'stage', got {norms!r}")
    report = TransferReport()
    out = OrderedDict()
    for key, value in det_state_dict.items():
        if not key.startswith(BACKBONE):
            report.add('dropped', key, None, 'detector neck/heads')
            continue
        m = re.match(r'^backbone\.out_norms\.(\d)\.(.*)$', key)
        if m and norms == 'stage':
            dst = f'backbone.stage_norms.{m.group(1)}.{m.group(2)}'
            out[dst] = value
            report.add('renamed', key, dst, 'out_norm as stage_norm (an approximation: a '
                       'stage norm also feeds the next stage)')
            continue
        if m and m.group(1) != '3':
            report.add('dropped', key, None,
                       'out_norm of a map the classifier (out_indices=(3,)) does not return')
            continue
        out[key] = value
        report.add('loaded', key, key)
    if head_state_dict is not None:
        for key, value in head_state_dict.items():
            if key.startswith(('neck.', 'head.')):
                out[key] = value
                report.add('loaded', key, key)
    return out, report


def backbone_shapes(config):
    """``{backbone key: shape}`` of the backbone a (detection or classification) config builds."""
    backbone = init_model(config, device='meta', part='backbone')
    return OrderedDict((k, tuple(v.shape)) for k, v in backbone.state_dict().items())


def transfer_cls_to_det(src, dst=None, config=None, use_ema=False, out_format=None,
                        logger='current', target_shapes=None):
    """File-level classification -> detection transfer; returns ``(checkpoint, report)``.

    Raw weights by default (``use_ema=True``: the EMA); ``meta['weights']`` records which. The
    target backbone is ``config``'s or given as ``target_shapes`` (:func:`backbone_shapes`).
    """
    checkpoint = load_checkpoint(src) if isinstance(src, str) else src
    name = src if isinstance(src, str) else '<dict>'
    state_dict = state_dict_of(checkpoint, 'ema' if use_ema else 'raw', strict=True)
    source, weights = state_dict.source, state_dict.kind
    shapes = backbone_shapes(config) if config is not None else target_shapes
    det_state_dict, report = cls_to_det(state_dict, shapes)
    require_backbone(det_state_dict, name)
    log_message(f'cls2det: reading {name}: {source}', logger)
    for line in report.summary_lines():
        log_message(f'cls2det: {line}', logger)
    missing = [r[2] for r in report.keys('missing') if not r[2].startswith('backbone.out_norms.')]
    if missing:
        raise ValueError(f'the classification checkpoint {name} lacks {len(missing)} backbone '
                         f'keys of the target: {_short_list(missing)}; fix: use the checkpoint '
                         'of the same STM and scale as the config')
    meta = dict(source=src if isinstance(src, str) else None, source_weights=source,
                weights=weights, converter='stm_mm.transfer.cls_to_det',
                note='backbone of a classification checkpoint for the detector; stage_norms '
                'dropped, out_norms left to the detector (fresh LayerNorms)')
    if isinstance(checkpoint.get('meta'), dict):
        meta['source_meta'] = {k: v for k, v in checkpoint['meta'].items()
                               if isinstance(v, (str, int, float))}
    result = dict(state_dict=det_state_dict, meta=meta)
    if dst is not None:
        save_checkpoint(result, dst, out_format)
        log_message(f'cls2det: wrote {len(det_state_dict)} backbone tensors ({weights} weights) to '
             f'{dst}', logger)
    return result, report


def transfer_det_to_cls(src, dst=None, norms='output', head_from=None, out_format=None,
                        logger='current'):
    """File-level detection -> classification transfer; returns ``(checkpoint, report)``."""
    checkpoint = load_checkpoint(src) if isinstance(src, str) else src
    name = src if isinstance(src, str) else '<dict>'
    state_dict = checkpoint.get('state_dict', checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state_dict, dict):
        raise ValueError(f'{name} is not a detector checkpoint (a dict with `state_dict`)')
    state_dict = strip_module_prefix(state_dict)
    if any(k.startswith('backbone.downsample_layers.') for k in state_dict):
        state_dict = mmdet2_to_stm_mm(state_dict)[0]
    require_backbone(state_dict, name, 'detection backbone')
    head = None
    if head_from is not None:
        head = state_dict_of(load_checkpoint(head_from) if isinstance(head_from, str)
                             else head_from, 'raw', strict=True)
    cls_state_dict, report = det_to_cls(state_dict, norms=norms, head_state_dict=head)
    for line in report.summary_lines():
        log_message(f'det2cls: {line}', logger)
    if norms == 'output':
        log_message("det2cls: build the classifier with model.backbone.norm_placement='output' "
             '(out_indices=(3,)) to load this checkpoint', logger)
    if head is None:
        log_message('det2cls: no neck/head in the output (pass a classification checkpoint to copy '
             'them); load it non-strictly or train a head', logger)
    result = dict(state_dict=cls_state_dict,
                  meta=dict(source=src if isinstance(src, str) else None, norms=norms,
                            converter='stm_mm.transfer.det_to_cls'))
    if dst is not None:
        save_checkpoint(result, dst, out_format)
        log_message(f'det2cls: wrote {len(cls_state_dict)} tensors to {dst}', logger)
    return result, report
