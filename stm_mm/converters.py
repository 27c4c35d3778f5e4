"""Checkpoint key maps between the authors' layout and stm_mm's (pure functions on state dicts).

The authors' classification keys (listed in ``tests/data/official_keys.json.gz``) are flat
(``downsample_layers.*``, ``stages.i.j.*``, ``stage_norms.*``, ``conv_head.*``, ``head.*``);
stm_mm's classifier is an mmpretrain ``ImageClassifier`` whose keys start with ``backbone.``,
``neck.`` and ``head.``. Besides renaming, a few tensors change shape: layer scales become
``(C,)`` and 1x1 convolutions that act on channels-last maps become ``nn.Linear`` weights.
Block keys go through the mixer's key table (``MixerSpec.keys``), read in one direction or the
other.
"""
import re

from .models.mixers import mixer_spec, mixer_specs
from .models.mixers.spec import CHANNELS_FIRST, CHANNELS_LAST, CONV1X1

# Derived from sizes; the authors' own loader drops them too.
_DROPPED = re.compile(r'(^|\.)(relative_position_index|attn_mask)$')

# A block key in either layout: the authors' ``stages.i.j.<rest>``, ours
# ``[backbone.]stages.i.blocks.j.<rest>``.
_BLOCK_KEY = re.compile(r'^(?:backbone\.)?stages\.\d+\.(blocks\.)?\d+\.(.*)$')

# stm_mm tensor -> the authors' shape, per layout of a key table row (the inverse flattens).
_TO_AUTHORS = {
    CHANNELS_LAST: lambda t: t.reshape(1, 1, 1, -1),
    CHANNELS_FIRST: lambda t: t.reshape(1, -1, 1, 1),
    CONV1X1: lambda t: t[:, :, None, None],
}
_FROM_AUTHORS = {
    CHANNELS_LAST: lambda t: t.reshape(-1),
    CHANNELS_FIRST: lambda t: t.reshape(-1),
    CONV1X1: lambda t: t.flatten(1),
}


def rename_block_key(rest, stm, to_authors=False):
    """A block-local key through ``stm``'s key table (:class:`stm_mm.models.mixers.MixerSpec`):
    ``(new key, layout or None)``, or ``(None, None)`` when no row matches."""
    src, dst = (1, 0) if to_authors else (0, 1)
    for row in mixer_spec(stm).key_rows():
        name = row[src]
        if rest.startswith(name) if name.endswith('.') else rest == name:
            return row[dst] + rest[len(name):], row[2]
    return None, None


def stm_from_keys(keys):
    """The mixer of a state dict in either layout, told by its spec's ``signature`` (None for
    one without block keys, which needs no mixer to convert)."""
    found, blocks = set(), False
    for key in keys:
        m = _BLOCK_KEY.match(key)
        if m is None:
            continue
        blocks = True
        ours, rest = m.group(1) is not None, m.group(2)
        for name, spec in mixer_specs().items():
            if spec.signature is None:
                continue
            probe = spec.signature if ours else rename_block_key(spec.signature, name, True)[0]
            if rest.startswith(probe):
                found.add(name)
    if not blocks:
        return None
    if len(found) != 1:
        what = f'it matches {sorted(found)}' if found else 'no mixer signature matches'
        raise ValueError(f'cannot tell the mixer from the keys ({what}); fix: pass the stm '
                         f'explicitly (one of {", ".join(mixer_specs())})')
    return found.pop()


# The authors' backbone keys outside blocks -> ours.
_BACKBONE_RENAMES = [
    (r'^downsample_layers\.0\.stem\.(.*)$', r'stem.\1'),
    (r'^downsample_layers\.1\.reduction\.(.*)$', r'transitions.0.\1'),
    (r'^downsample_layers\.2\.reduction\.(.*)$', r'transitions.1.\1'),
    (r'^downsample_layers\.3\.reduction\.(.*)$', r'transitions.2.\1'),
    (r'^(stage_norms\.\d+\..*)$', r'\1'),
    (r'^out_norm_?(\d)\.(.*)$', r'out_norms.\1.\2'),
    (r'^stages\.(\d+)\.\d+\.pos_embed$', r'stages.\1.pos_embed.weight'),
]

_HEAD_RENAMES = [
    (r'^conv_head\.0\.', 'neck.conv.'),
    (r'^conv_head\.1\.', 'neck.bn.'),
    (r'^avg_head\.1\.', 'neck.pooled_norm.'),
    (r'^head\.', 'head.fc.'),
]


def official_backbone_item(key, value, stm):
    """Authors' backbone key and tensor -> ``(stm_mm backbone-relative key, tensor)``; None for
    a key derived from sizes. KeyError for a key that is not the authors'."""
    if _DROPPED.search(key):
        return None
    for pattern, repl in _BACKBONE_RENAMES:
        m = re.match(pattern, key)
        if m:
            return m.expand(repl), value
    m = re.match(r'^stages\.(\d+)\.(\d+)\.(.*)$', key)
    if m:
        stage, block, rest = m.groups()
        new, layout = rename_block_key(rest, stm)
        if new is not None:
            value = _FROM_AUTHORS[layout](value) if layout else value
            return f'stages.{stage}.blocks.{block}.{new}', value
    raise KeyError(f'Unrecognised key in the authors\' {stm} checkpoint: {key!r}')


def official_to_stm_mm(state_dict, stm=None):
    """Authors' classification state dict -> stm_mm ``ImageClassifier`` state dict (``stm``:
    the mixer, told from the keys by default)."""
    stm = stm or stm_from_keys(state_dict)
    converted = {}
    for key, value in state_dict.items():
        new_key = None
        for pattern, repl in _HEAD_RENAMES:
            if re.match(pattern, key):
                new_key = re.sub(pattern, repl, key)
                break
        if new_key is None:
            item = official_backbone_item(key, value, stm)
            if item is None:
                continue
            new_key, value = 'backbone.' + item[0], item[1]
        converted[new_key] = value
    return converted


def stm_mm_to_official(state_dict, stm):
    """stm_mm ``ImageClassifier`` state dict -> the authors' layout for mixer ``stm``."""
    reverse_head = [(r'^neck\.conv\.', 'conv_head.0.'), (r'^neck\.bn\.', 'conv_head.1.'),
                    (r'^neck\.pooled_norm\.', 'avg_head.1.'), (r'^head\.fc\.', 'head.')]
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
                new, layout = rename_block_key(rest, stm, to_authors=True)
                if new is not None:
                    rest = new
                    value = _TO_AUTHORS[layout](value) if layout else value
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

