"""The mixer specs: what each records, the key tables read both ways, and the lists outside
Python that must name the same mixers."""
import os.path as osp
import re

import pytest
import torch

from stm_mm.converters import rename_block_key, stm_from_keys
from stm_mm.models import STM_NAMES
from stm_mm.models.mixers import MixerSpec, ShiftedWindowAttention, mixer_spec, mixer_specs
from stm_mm.ops.impl_switch import forced_impl, forced_impls

from .. import ROOT


# what erf.STM_LABELS and get_flops.PAPER_CONVENTION said before the specs
LABELS = dict(halo='U-HaloNet', pvt='U-PVT', swin='U-Swin', dwconv='U-DWConv',
              dcnv3='U-InternImage')
FLOPS = dict(halo='paper_local', pvt='paper_local', dwconv='paper_local', swin='total',
             dcnv3='total')


def test_the_shipped_mixers_in_the_papers_order():
    assert STM_NAMES == ('halo', 'pvt', 'swin', 'dwconv', 'dcnv3')
    assert list(mixer_specs()) == list(STM_NAMES)
    assert {name: spec.label for name, spec in mixer_specs().items()} == LABELS
    assert {name: spec.flops for name, spec in mixer_specs().items()} == FLOPS


@pytest.mark.parametrize('stm', STM_NAMES)
def test_every_key_table_row_reads_back_in_both_directions(stm):
    """First match wins in either direction: none of a mixer's own rows is shadowed by an
    earlier one (the shared rows after them are fallbacks, e.g. dwconv's ``dw_norm.`` takes
    ``norm1.``)."""
    for authors, ours, *_ in mixer_spec(stm).keys:
        assert rename_block_key(authors, stm)[0] == ours, authors
        assert rename_block_key(ours, stm, to_authors=True)[0] == authors, ours


@pytest.mark.parametrize('stm', STM_NAMES)
def test_signatures_tell_the_mixer_in_both_layouts(stm):
    signature = mixer_spec(stm).signature
    theirs = rename_block_key(signature, stm, to_authors=True)[0]
    assert stm_from_keys([f'backbone.stages.1.blocks.0.{signature}weight']) == stm
    assert stm_from_keys([f'stages.1.0.{theirs}', 'stages.1.0.norm1.weight']) == stm


def test_keys_without_a_signature_name_the_fix():
    with pytest.raises(ValueError, match=r'no mixer signature matches\); fix: pass the stm'):
        stm_from_keys(['stages.0.0.norm1.weight', 'stem.0.weight'])
    assert stm_from_keys(['downsample_layers.0.stem.0.weight']) is None  # no block to convert
    with pytest.raises(ValueError, match=r"it matches \['halo', 'swin'\]"):
        stm_from_keys(['stages.0.0.attn.pos_embed.height_rel',
                       'stages.0.0.attn.relative_position_bias_table'])


def test_a_bad_spec_fails_at_declaration():
    with pytest.raises(ValueError, match=r"key table row \('a\.', 'b\.', 'nchw'\)"):
        MixerSpec('x', keys=(('a.', 'b.', 'nchw'), ))
    with pytest.raises(ValueError, match="flops must be 'total' or 'paper_local'"):
        MixerSpec('x', flops='fvcore')
    assert MixerSpec('x').label == 'U-x'


def test_forced_impls_nest_and_restore():
    mixer = ShiftedWindowAttention(8, 2, impl='reference')
    cpu = torch.device('cpu')
    with forced_impls(swin='export'):
        assert mixer.resolve_impl(cpu) == 'export'
        with forced_impls(swin='sdpa', halo='reference'):
            assert (forced_impl('swin'), forced_impl('halo')) == ('sdpa', 'reference')
        assert forced_impl('halo') is None and mixer.resolve_impl(cpu) == 'export'
    assert forced_impl('swin') is None and mixer.resolve_impl(cpu) == 'reference'


def _shell_lists():
    """Every mixer list and label table written in the shell scripts."""
    found = {}
    for path in ('tools/demo/cls_digits.sh', 'tools/demo/det_digit_scenes.sh',
                 'tools/demo/analysis_figures.sh', 'tools/analysis_tools/gpu_report.sh'):
        with open(osp.join(ROOT, path)) as f:
            text = f.read()
        lists = re.findall(r'^\s*(?:ALL_)?STMS="([^"]+)"', text, re.M)
        lists += re.findall(r'^\s*for stm in ((?:\w+ )+\w+); do', text, re.M)
        found[path] = lists
        labels = dict(re.findall(r'(\w+)\) echo ([\w-]+) ;;', text))
        if labels:
            found[path + ' labels'] = labels
    return found


def test_shell_scripts_list_the_registered_mixers():
    found = _shell_lists()
    for path, lists in found.items():
        if path.endswith('labels'):
            assert lists == LABELS, path
        else:
            assert lists and all(tuple(names.split()) == STM_NAMES for names in lists), path
    assert 'tools/demo/analysis_figures.sh labels' in found
