"""The model zoo in mmpretrain's format, and the authors' checkpoints loaded as they are.

``model-index.yml`` (repository root) imports ``configs/cls/metafile.yml`` (the 20 ImageNet-1k
classifiers ``u-<stm>-<scale>_in1k``: the paper's Table IV parameters, MACs and top-1, the
authors' release file, the converter) and ``configs/det/metafile.yml`` (their Mask R-CNN 1x,
``mask-rcnn_u-<stm>-<scale>_fpn_1x_coco``, Table V). The package reads them, as openmim does,
from ``stm_mm/.mim`` (``setup.py`` copies ``configs/``, ``tools/`` and ``model-index.yml`` there
for a wheel and links them in an editable install). :func:`register_model_zoo`, run when
``stm_mm`` is imported, adds the classifiers to mmpretrain's ``ModelHub`` as soon as mmpretrain
is imported (not before: mmdet-only users never import it), so
``mmpretrain.list_models('u-*')`` lists them and ``mmpretrain.get_model('u-halo-tiny_in1k')``
builds one.

:func:`to_stm_mm_layout` follows MMEngine's local and http(s) checkpoint readers once
:func:`stm_mm.patches.install` ran. So every MMEngine load (``get_model(...,
pretrained=PATH_OR_URL)``, ``load_checkpoint``, ``load_from``, ``init_cfg=dict(type='Pretrained')``,
mmdet's ``DetInferencer``) accepts the authors' files:

* classification, ``{'model': ..., ['model_ema': ...]}`` or a bare dict with their flat keys
  (``downsample_layers.*``, ``stages.i.j.*``): ``official_checkpoint_to_stm_mm`` on ``model``
  (``model_ema`` when it is the only one), as ``tools/model_converters/official_to_stm_mm.py``;
* detection, mmdet 2.x ``{'state_dict': {'backbone.downsample_layers.*', 'neck.*', ...}}``:
  ``stm_mm.authors_checkpoints.convert_mmdet2_checkpoint``, as ``tools/model_converters/mmdet2_to_stm_mm.py``.

Anything else is returned unchanged.
"""
import importlib.abc
import importlib.util
import re
import sys
import warnings
from pathlib import Path

from .authors_checkpoints import convert_mmdet2_checkpoint, official_checkpoint_to_stm_mm

MIM_ROOT = Path(__file__).resolve().parent / '.mim'
CLS_METAFILE = MIM_ROOT / 'configs' / 'cls' / 'metafile.yml'
_AUTHORS_CLS_KEY = re.compile(r'^(module\.)?downsample_layers\.')
_AUTHORS_DET_KEY = re.compile(r'^(module\.)?backbone\.downsample_layers\.')


def _log(message):
    from mmengine.logging import print_log
    print_log(message, logger='current')


def _has_key(state_dict, pattern):
    return isinstance(state_dict, dict) and any(
        isinstance(k, str) and pattern.match(k) for k in state_dict)


def to_stm_mm_layout(checkpoint):
    """The authors' classification or mmdet 2.x checkpoint -> stm_mm's ``{'state_dict', 'meta'}``.

    Checkpoints in any other layout (MMEngine's, torchvision's, ...) are returned unchanged.
    """
    if not isinstance(checkpoint, dict):
        return checkpoint
    if _has_key(checkpoint, _AUTHORS_CLS_KEY):
        checkpoint = dict(model=checkpoint)
    weights = [k for k in ('model', 'model_ema') if _has_key(checkpoint.get(k), _AUTHORS_CLS_KEY)]
    if weights:
        _log(f"the authors' classification checkpoint: converting its `{weights[0]}` with "
             'stm_mm.authors_checkpoints.official_checkpoint_to_stm_mm')
        return official_checkpoint_to_stm_mm(checkpoint, use_ema=weights[0] == 'model_ema')
    if _has_key(checkpoint.get('state_dict'), _AUTHORS_DET_KEY):
        _log("the authors' mmdet 2.x detector: converting it with "
             'stm_mm.authors_checkpoints.convert_mmdet2_checkpoint')
        return convert_mmdet2_checkpoint(checkpoint)[0]
    return checkpoint


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs ``callback`` once, right after the module ``name`` is first imported."""

    def __init__(self, name, callback):
        self.name, self.callback = name, callback

    def find_spec(self, fullname, path, target=None):
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        exec_module, callback = spec.loader.exec_module, self.callback

        def exec_then_call(module):
            exec_module(module)
            callback()

        spec.loader.exec_module = exec_then_call
        return spec


def register_model_zoo():
    """Add the classifiers of ``stm_mm/.mim/configs/cls/metafile.yml`` to mmpretrain's ``ModelHub``
    now if ``mmpretrain.apis`` is imported, else right after it is."""
    if 'mmpretrain.apis' in sys.modules:
        _register_in_model_hub()
    elif not any(isinstance(f, _AfterImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport('mmpretrain.apis', _register_in_model_hub))


def _register_in_model_hub():
    """Config paths in the metafile are relative to ``stm_mm/.mim``. Warns (and registers
    nothing) when the metafile is missing; does nothing when the zoo is already registered."""
    from mmpretrain.apis import ModelHub
    if ModelHub.has('u-halo-tiny_in1k'):
        return
    if not CLS_METAFILE.is_file():
        warnings.warn(f"stm_mm's model zoo is empty: {CLS_METAFILE} is missing (this stm_mm was "
                      'installed without its configs); reinstall it from a checkout: '
                      '`pip install -e .`, or `pip wheel .` and install the wheel')
        return
    ModelHub.register_model_index(CLS_METAFILE, config_prefix=MIM_ROOT)
