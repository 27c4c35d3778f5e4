"""Registries.

Models are registered in MMEngine's root ``MODELS`` registry. mmpretrain's and mmdet's model
registries are children of it and look a name up in their ancestors, so the very same classes
build from an mmpretrain config and from an mmdet config (``custom_imports=dict(imports=['stm_mm'])``).

``TOKEN_MIXERS`` holds the spatial token mixers by short name (``'halo'``, ``'pvt'``, ``'swin'``,
``'dwconv'``, ``'dcnv3'``); a new mixer is one class decorated with
``@register_mixer(MixerSpec(name=...))`` (:mod:`stm_mm.models.mixers.spec`, docs/add_mixer.md).
Looking a mixer up runs :func:`stm_mm.patches.install` first: a ``UnifiedBackbone`` built from any
config (an mmpretrain or mmdet Runner with ``custom_imports=dict(imports=['stm_mm'])``,
``init_model``, ``get_model``) makes MMEngine read checkpoints safely before the Runner reads one.
"""
from mmengine.registry import MODELS, Registry

from .patches import install


class _InstallingRegistry(Registry):
    """A ``Registry`` whose ``get`` runs :func:`stm_mm.patches.install` first."""

    def get(self, key):
        install()
        return super().get(key)


TOKEN_MIXERS = _InstallingRegistry('spatial token mixer', scope='stm_mm')

__all__ = ['MODELS', 'TOKEN_MIXERS']
