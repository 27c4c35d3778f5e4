"""Checkpoint key maps between the authors' layout and stm_mm's (pure functions on state dicts).

The authors' classification keys (listed in ``tests/data/official_keys.json.gz``) are flat
(``downsample_layers.*``, ``stages.i.j.*``, ``stage_norms.*``, ``conv_head.*``, ``head.*``);
stm_mm's classifier is an mmpretrain ``ImageClassifier`` whose keys start with ``backbone.``,
``neck.`` and ``head.``. Besides renaming, a few tensors change shape: layer scales become
``(C,)`` and 1x1 convolutions that act on channels-last maps become ``nn.Linear`` weights.
"""
import re

import torch

# Derived from sizes; the authors' own loader drops them too.
_DROPPED = re.compile(r'(^|\.)(relative_position_index|attn_mask)$')

# Block-local renames, authors -> stm_mm; the first match wins.
_BLOCK_RENAMES = [
    (r'^gamma_?1$', 'gamma1'),
    (r'^gamma_?2$', 'gamma2'),
    (r'^dw_norm\.', 'norm1.'),
    (r'^pw_norm\.', 'norm2.'),
    (r'^dw_input_proj\.', 'mixer.input_proj.'),
    (r'^dwconv\.', 'mixer.dwconv.'),
    (r'^dw_out_proj\.', 'mixer.output_proj.'),
    (r'^pwconv1\.', 'mlp.fc1.'),
    (r'^pwconv2\.', 'mlp.fc2.'),
    (r'^attn\.pos_embed\.(height|width)_rel$', r'mixer.\1_rel'),
    (r'^attn\.norm\.', 'mixer.sr_norm.'),
    (r'^attn\.dw_conv\.0\.', 'mixer.offset_dwconv.'),
    (r'^attn\.dw_conv\.1\.norm\.', 'mixer.offset_norm.'),
    (r'^attn\.', 'mixer.'),
    (r'^(norm[12]|mlp)\.', r'\1.'),
]
# stm_mm keys whose tensors are 1x1-conv weights in the authors' model (Linear here).
_LINEAR_FROM_CONV1X1 = re.compile(r'mixer\.(kv|input_proj|output_proj)\.weight$')


def _official_backbone_key(key):
    """Authors' key -> stm_mm backbone-relative key (None when dropped or not a backbone key)."""
    if _DROPPED.search(key):
        return None
    m = re.match(r'^downsample_layers\.0\.stem\.(.*)$', key)
    if m:
        return f'stem.{m.group(1)}'
    m = re.match(r'^downsample_layers\.([123])\.reduction\.(.*)$', key)
    if m:
        return f'transitions.{int(m.group(1)) - 1}.{m.group(2)}'
    m = re.match(r'^(stage_norms\.\d+\..*)$', key)
    if m:
        return m.group(1)
    m = re.match(r'^out_norm_?(\d)\.(.*)$', key)
    if m:
        return f'out_norms.{m.group(1)}.{m.group(2)}'
    m = re.match(r'^stages\.(\d+)\.(\d+)\.pos_embed$', key)
    if m:
        return f'stages.{m.group(1)}.pos_embed.weight'
    m = re.match(r'^stages\.(\d+)\.(\d+)\.(.*)$', key)
    if m:
        stage, block, rest = m.groups()
        for pattern, repl in _BLOCK_RENAMES:
            if re.match(pattern, rest):
                return f'stages.{stage}.blocks.{block}.' + re.sub(pattern, repl, rest)
    raise KeyError(f'Unrecognised key in the authors\' checkpoint: {key!r}')


_HEAD_RENAMES = [
    (r'^conv_head\.0\.', 'neck.conv.'),
    (r'^conv_head\.1\.', 'neck.bn.'),
    (r'^avg_head\.1\.', 'neck.pooled_norm.'),
    (r'^head\.', 'head.fc.'),
]


def official_to_stm_mm(state_dict):
    """Authors' classification state dict -> stm_mm ``ImageClassifier`` state dict."""
    converted = {}
    for key, value in state_dict.items():
        new_key = None
        for pattern, repl in _HEAD_RENAMES:
            if re.match(pattern, key):
                new_key = re.sub(pattern, repl, key)
                break
        if new_key is None:
            backbone_key = _official_backbone_key(key)
            if backbone_key is None:
                continue
            new_key = 'backbone.' + backbone_key
            if re.search(r'\.gamma[12]$', new_key):
                value = value.reshape(-1)
            elif _LINEAR_FROM_CONV1X1.search(new_key):
                value = value.flatten(1)
        converted[new_key] = value
    return converted


def _official_gamma_shape(stm, which, channels):
    if stm == 'halo':
        return (1, 1, 1, channels)
    if stm == 'dwconv':
        return (1, channels, 1, 1) if which == '1' else (1, 1, 1, channels)
    return (channels, )


def stm_mm_to_official(state_dict, stm):
    """stm_mm ``ImageClassifier`` state dict -> the authors' layout for mixer ``stm``."""
    reverse_head = [(r'^neck\.conv\.', 'conv_head.0.'), (r'^neck\.bn\.', 'conv_head.1.'),
                    (r'^neck\.pooled_norm\.', 'avg_head.1.'), (r'^head\.fc\.', 'head.')]
    block_renames = {
        'dwconv': [(r'^norm1\.', 'dw_norm.'), (r'^norm2\.', 'pw_norm.'),
                   (r'^mixer\.input_proj\.', 'dw_input_proj.'), (r'^mixer\.dwconv\.', 'dwconv.'),
                   (r'^mixer\.output_proj\.', 'dw_out_proj.'), (r'^mlp\.fc1\.', 'pwconv1.'),
                   (r'^mlp\.fc2\.', 'pwconv2.')],
        'halo': [(r'^mixer\.(height|width)_rel$', r'attn.pos_embed.\1_rel')],
        'pvt': [(r'^mixer\.sr_norm\.', 'attn.norm.')],
        'dcnv3': [(r'^mixer\.offset_dwconv\.', 'attn.dw_conv.0.'),
                  (r'^mixer\.offset_norm\.', 'attn.dw_conv.1.norm.')],
    }.get(stm, []) + [(r'^mixer\.', 'attn.')]
    out = {}
    for key, value in state_dict.items():
        new_key = None
        for pattern, repl in reverse_head:
            if re.match(pattern, key):
                new_key = re.sub(pattern, repl, key)
        if new_key is None:
            key = key[len('backbone.'):] if key.startswith('backbone.') else key
            m = re.match(r'^stem\.(.*)$', key)
            m2 = re.match(r'^transitions\.(\d)\.(.*)$', key)
            m3 = re.match(r'^stages\.(\d+)\.pos_embed\.weight$', key)
            m4 = re.match(r'^stages\.(\d+)\.blocks\.(\d+)\.(.*)$', key)
            m5 = re.match(r'^out_norms\.(\d)\.(.*)$', key)
            if m:
                new_key = f'downsample_layers.0.stem.{m.group(1)}'
            elif m2:
                new_key = f'downsample_layers.{int(m2.group(1)) + 1}.reduction.{m2.group(2)}'
            elif m3:
                new_key = f'stages.{m3.group(1)}.0.pos_embed'
            elif m5:
                new_key = f'out_norm_{m5.group(1)}.{m5.group(2)}'
            elif m4:
                stage, block, rest = m4.groups()
                g = re.match(r'^gamma([12])$', rest)
                if g:
                    name = f'gamma{g.group(1)}' if stm == 'dcnv3' else f'gamma_{g.group(1)}'
                    value = value.reshape(_official_gamma_shape(stm, g.group(1), value.numel()))
                    rest = name
                else:
                    if _LINEAR_FROM_CONV1X1.search(rest) and stm in ('halo', 'dwconv'):
                        value = value[:, :, None, None]
                    for pattern, repl in block_renames:
                        if re.match(pattern, rest):
                            rest = re.sub(pattern, repl, rest)
                            break
                new_key = f'stages.{stage}.{block}.{rest}'
            else:
                new_key = key
        out[new_key] = value
    return out


def check_state_dict_fits(model, state_dict):
    """Raise a ``KeyError`` naming the missing, unexpected and mis-shaped keys, if any."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    misshaped = sorted(f'{k}: checkpoint {tuple(state_dict[k].shape)} vs model '
                       f'{tuple(own[k].shape)}' for k in set(own) & set(state_dict)
                       if tuple(own[k].shape) != tuple(state_dict[k].shape))
    if missing or unexpected or misshaped:
        lines = ['The checkpoint does not fit the model:']
        for title, items in (('missing', missing), ('unexpected', unexpected),
                             ('mis-shaped', misshaped)):
            if items:
                shown = ', '.join(items[:10]) + (f' ... (+{len(items) - 10} more)'
                                                 if len(items) > 10 else '')
                lines.append(f'  {len(items)} {title}: {shown}')
        lines.append('Check that the config (stm, arch, num_classes) matches the checkpoint, or '
                     'convert the authors\' checkpoint with '
                     'tools/model_converters/official_to_stm_mm.py.')
        raise KeyError('\n'.join(lines))


def load_state_dict_checked(model, state_dict):
    """``model.load_state_dict(strict=True)`` with a readable error instead of torch's."""
    check_state_dict_fits(model, state_dict)
    model.load_state_dict(state_dict, strict=True)

