"""What the toolbox knows about each spatial token mixer, declared next to its class.

A mixer is one :class:`TokenMixer` subclass registered with :func:`register_mixer` and a
:class:`MixerSpec`; the backbone, the checkpoint converters, the FLOP table, the ERF labels and the
tools all read the spec, so a new mixer touches its own file only (see ``docs/add_mixer.md``).
"""
from collections.abc import Mapping
from dataclasses import dataclass, field

from ...registry import TOKEN_MIXERS

# How the authors store a tensor that stm_mm keeps in another shape (the third entry of a key
# table row): a layer scale ``(C,)`` as ``(1, 1, 1, C)`` or ``(1, C, 1, 1)``; an ``nn.Linear``
# weight ``(O, I)`` as a 1x1 convolution ``(O, I, 1, 1)``.
CHANNELS_LAST = 'channels_last'
CHANNELS_FIRST = 'channels_first'
CONV1X1 = 'conv1x1'
LAYOUTS = (CHANNELS_LAST, CHANNELS_FIRST, CONV1X1)

# Rows every block shares, tried after a mixer's own rows.
COMMON_KEYS = (('gamma_1', 'gamma1'), ('gamma_2', 'gamma2'), ('norm1.', 'norm1.'),
               ('norm2.', 'norm2.'), ('mlp.', 'mlp.'), ('attn.', 'mixer.'))


@dataclass(frozen=True)
class MixerSpec:
    """The declarative record of one mixer.

    Args:
        name: registry name, the backbone's ``stm`` (``'halo'``).
        label: name in tables and figures (``'U-HaloNet'``); default ``'U-<name>'``.
        keys: block-local key table, the authors' layout -> stm_mm's: rows ``(authors, ours)`` or
            ``(authors, ours, layout)`` with ``layout`` one of :data:`LAYOUTS`. A name ending in
            ``.`` is a prefix, any other an exact key; the first matching row wins, in either
            direction, before :data:`COMMON_KEYS`. Both conversions derive from this one table.
        signature: block-local stm_mm key prefix that only this mixer's checkpoints have
            (``'mixer.height_rel'``); tells the mixer of a checkpoint in either layout.
        flops: the total of :func:`stm_mm.analysis.complexity.complexity` that the paper's
            Table IV reports for it: ``'total'`` (fvcore style) or ``'paper_local'``.
        presets: ``{scale: arch dict}`` (:func:`stm_mm.models.arch_zoo.arch`), the ``arch=``
            names the backbone accepts for this mixer.
        impls: the implementations behind its ``impl=`` switch
            (:mod:`stm_mm.ops.impl_switch`), the portable baseline first; the mixer benchmark
            times them side by side. Empty for a mixer with one implementation.
        export_impl: the implementation the ONNX exporter forces (one that keeps every
            size-dependent decision in the graph), or None when the default one traces.
    The mixer's default options (its ``stm_cfg``) are its constructor's keyword defaults.
    """
    name: str
    label: str = None
    keys: tuple = ()
    signature: str = None
    flops: str = 'total'
    presets: dict = field(default_factory=dict)
    impls: tuple = ()
    export_impl: str = None

    def __post_init__(self):
        if self.label is None:
            object.__setattr__(self, 'label', f'U-{self.name}')
        for row in self.keys:
            if len(row) not in (2, 3) or (len(row) == 3 and row[2] not in LAYOUTS):
                raise ValueError(f'mixer {self.name!r}: key table row {row!r} must be (authors, '
                                 f'ours) or (authors, ours, layout) with layout in {LAYOUTS}')
        if self.flops not in ('total', 'paper_local'):
            raise ValueError(f"mixer {self.name!r}: flops must be 'total' or 'paper_local', "
                             f'got {self.flops!r}')

    def key_rows(self):
        """The full table: ``(authors, ours, layout or None)`` rows, own rows first."""
        return tuple((*row, None)[:3] for row in self.keys + COMMON_KEYS)


def register_mixer(spec):
    """Class decorator: register a :class:`TokenMixer` under ``spec.name`` with its spec."""
    def wrap(cls):
        cls.spec = spec
        TOKEN_MIXERS.register_module(spec.name, module=cls)
        return cls
    return wrap


def unregister_mixer(name):
    """Remove a mixer from the registry (tests that register their own)."""
    TOKEN_MIXERS.module_dict.pop(name)


def mixer_spec(name):
    """The spec of the registered mixer ``name`` (a default one for a class registered without
    :func:`register_mixer`); KeyError listing the valid names for an unknown one."""
    if name not in TOKEN_MIXERS.module_dict:
        valid = ', '.join(sorted(TOKEN_MIXERS.module_dict))
        raise KeyError(f'Unknown spatial token mixer {name!r}; valid names: {valid}')
    cls = TOKEN_MIXERS.module_dict[name]
    return cls.__dict__.get('spec') or MixerSpec(name)


def mixer_specs():
    """``{name: spec}`` of every registered mixer, in registration order."""
    return {name: mixer_spec(name) for name in TOKEN_MIXERS.module_dict}


class SpecView(Mapping):
    """``view[name]``: one field of the registered mixers' specs, for the mixers where it is not
    empty; a live, read-only view (mixers registered later appear)."""

    def __init__(self, attribute):
        self.attribute = attribute

    def __getitem__(self, name):
        value = getattr(mixer_spec(name), self.attribute) if name in TOKEN_MIXERS.module_dict \
            else None
        if not value:
            raise KeyError(f'mixer {name!r} has no {self.attribute} (registered mixers with '
                           f'them: {", ".join(self)})')
        return value

    def __iter__(self):
        return (name for name, spec in mixer_specs().items() if getattr(spec, self.attribute))

    def __len__(self):
        return sum(1 for _ in self)


# ARCH_ZOO[stm][scale]: the presets
ARCH_ZOO = SpecView('presets')
