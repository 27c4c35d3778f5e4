"""The authors' released checkpoints in stm_mm's layout (file level; the key maps are the mixers'
specs, applied by :mod:`stm_mm.converters`).

Classification (:func:`official_checkpoint_to_stm_mm`, :func:`stm_mm_checkpoint_to_official`, CLI
``tools/model_converters/official_to_stm_mm.py``)
    Their ``{'model': ..., ['model_ema': ...]}`` to ``{'state_dict': ..., 'meta': ...}`` and back.

mmdet 2.x Mask R-CNN (:func:`mmdet2_to_stm_mm`, CLI ``tools/model_converters/mmdet2_to_stm_mm.py``)
    Backbone keys go through :mod:`stm_mm.converters`; the FPN, RPN and RoI-head keys of Mask
    R-CNN did not change between mmdet 2.x and 3.x (mmdet 3.x serves its 2.x Mask R-CNN weights
    unchanged), so they are copied after a check that every key is one of them.
"""
import re
from collections import OrderedDict

from .apis import state_dict_of, strip_module_prefix
from .checkpoint_io import load_checkpoint, save_checkpoint
from .converters import (official_backbone_item, official_to_stm_mm, stm_from_keys,
                         stm_mm_to_official)
from .transfer import (BACKBONE, STAGE_NORM_REASON, TransferReport, log_message,
                       require_backbone)


# ---------------------------------------------------------------------------------------------
# The authors' mmdet 2.x detectors

# Mask R-CNN + FPN module names, identical in mmdet 2.x and 3.x.
_DET_HEAD_KEYS = re.compile(
    r'^(neck\.(lateral_convs|fpn_convs)\.\d+\.conv\.(weight|bias)'
    r'|rpn_head\.rpn_(conv|cls|reg)\.(weight|bias)'
    r'|roi_head\.bbox_head\.(shared_fcs\.\d+|fc_cls|fc_reg)\.(weight|bias)'
    r'|roi_head\.mask_head\.(convs\.\d+\.conv|upsample|conv_logits)\.(weight|bias))$')


def mmdet2_to_stm_mm(state_dict):
    """The authors' mmdet 2.x Mask R-CNN state dict -> stm_mm's mmdet 3.x ``MaskRCNN`` keys.

    Returns ``(state_dict, TransferReport)``. Unknown keys raise ``KeyError``.
    """
    report = TransferReport()
    backbone = OrderedDict()
    out = OrderedDict()
    for key, value in strip_module_prefix(state_dict).items():
        if key.startswith(BACKBONE):
            backbone[key[len(BACKBONE):]] = value
        elif _DET_HEAD_KEYS.match(key):
            out[key] = value
            report.add('loaded', key, key)
        else:
            raise KeyError(f'Unrecognised key in the mmdet 2.x checkpoint: {key!r} (expected '
                           'Mask R-CNN with FPN: backbone., neck., rpn_head., roi_head.)')
    converted = OrderedDict()
    stm = stm_from_keys(backbone)
    for key, value in backbone.items():
        item = official_backbone_item(key, value, stm)
        if item is None:
            report.add('dropped', BACKBONE + key, None,
                       'derived from sizes (Swin relative_position_index / attn_mask)')
            continue
        new_key, new_value = item
        if new_key.startswith('stage_norms.'):
            report.add('dropped', BACKBONE + key, None, STAGE_NORM_REASON)
            continue
        converted[BACKBONE + new_key] = new_value
        report.add('loaded', BACKBONE + key, BACKBONE + new_key)
    converted.update(out)
    return converted, report


def convert_mmdet2_checkpoint(src, dst=None, out_format=None, logger='current'):
    """File-level :func:`mmdet2_to_stm_mm`; keeps ``meta`` (``CLASSES`` -> ``dataset_meta``)."""
    checkpoint = load_checkpoint(src) if isinstance(src, str) else src
    name = src if isinstance(src, str) else '<dict>'
    state_dict = checkpoint.get('state_dict', checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state_dict, dict):
        raise ValueError(f'{name} is not an mmdet checkpoint (a dict with `state_dict`)')
    converted, report = mmdet2_to_stm_mm(state_dict)
    require_backbone(converted, name, 'detection backbone')
    for line in report.summary_lines():
        log_message(f'mmdet2_to_stm_mm: {line}', logger)
    meta = dict(converter='stm_mm.authors_checkpoints.mmdet2_to_stm_mm',
                source=src if isinstance(src, str) else None)
    old_meta = checkpoint.get('meta')
    if isinstance(old_meta, dict):
        classes = old_meta.get('CLASSES')
        if classes is not None:
            meta['dataset_meta'] = dict(classes=tuple(classes))
        for key in ('mmdet_version', 'epoch', 'iter'):
            if key in old_meta:
                meta[f'source_{key}'] = old_meta[key]
    result = dict(state_dict=converted, meta=meta)
    if dst is not None:
        save_checkpoint(result, dst, out_format)
        log_message(f'mmdet2_to_stm_mm: wrote {len(converted)} tensors to {dst}', logger)
    return result, report


# ---------------------------------------------------------------------------------------------
# The authors' classification checkpoints (file level; key maps in stm_mm.converters)


def official_checkpoint_to_stm_mm(checkpoint, use_ema=False, name='the checkpoint'):
    """Authors' ``{'model': ..., ['model_ema': ...]}`` -> ``{'state_dict': ..., 'meta': ...}``.

    ``model`` (raw weights) by default, ``model_ema`` with ``use_ema``; ``meta['weights']``
    records which.
    """
    key = 'model_ema' if use_ema else 'model'
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get(key), dict):
        found = sorted(checkpoint) if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise ValueError(f"{name} is not the authors' classification checkpoint: expected a "
                         f'{key!r} entry, found {found}')
    state_dict = strip_module_prefix(checkpoint[key])
    meta = dict(converter='stm_mm.converters.official_to_stm_mm', source_weights=key,
                weights='ema' if use_ema else 'raw')
    if 'epoch' in checkpoint and isinstance(checkpoint['epoch'], int):
        meta['source_epoch'] = checkpoint['epoch']
    converted = official_to_stm_mm(state_dict)
    require_backbone(converted, name)
    return dict(state_dict=converted, meta=meta)


def stm_mm_checkpoint_to_official(checkpoint, stm=None):
    """stm_mm classifier checkpoint (raw weights) -> the authors' ``{'model': ...}`` layout."""
    state_dict = state_dict_of(checkpoint, 'raw', strict=True)
    require_backbone(state_dict, 'the checkpoint')
    stm = stm or stm_from_keys(state_dict)
    return dict(model=stm_mm_to_official(state_dict, stm)), stm
