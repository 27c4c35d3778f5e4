"""The model zoo in mmpretrain's format, and the authors' checkpoints loaded as they are.

``model-index.yml`` (repository root) imports ``configs/cls/metafile.yml`` (the 20 ImageNet-1k
classifiers ``u-<stm>-<scale>_in1k``: the paper's Table IV parameters, MACs and top-1, the
authors' release file, the converter) and ``configs/det/metafile.yml`` (their Mask R-CNN 1x,
``mask-rcnn_u-<stm>-<scale>_fpn_1x_coco``, Table V). The package reads them, as openmim does,
from ``stm_mm/.mim`` (``setup.py`` copies ``configs/``, ``tools/`` and ``model-index.yml`` there
for a wheel and links them in an editable install). :func:`register_model_zoo`, run when
``stm_mm`` is imported, adds the classifiers to mmpretrain's ``ModelHub``, so
``mmpretrain.list_models('u-*')`` lists them and ``mmpretrain.get_model('u-halo-tiny_in1k')``
builds one.

:func:`register_checkpoint_loaders`, also run on import, wraps MMEngine's ``CheckpointLoader``
schemes for local files and http(s) URLs, whichever functions read them (the safe reader of
``stm_mm``'s checkpoint I/O, or MMEngine's own), in :func:`to_stm_mm_layout`. So every MMEngine
load (``get_model(..., pretrained=PATH_OR_URL)``, ``load_checkpoint``, ``load_from``,
``init_cfg=dict(type='Pretrained')``, mmdet's ``DetInferencer``) accepts the authors' files:

* classification, ``{'model': ..., ['model_ema': ...]}`` or a bare dict with their flat keys
  (``downsample_layers.*``, ``stages.i.j.*``): ``official_checkpoint_to_stm_mm`` on ``model``
  (``model_ema`` when it is the only one), as ``tools/model_converters/official_to_stm_mm.py``;
* detection, mmdet 2.x ``{'state_dict': {'backbone.downsample_layers.*', 'neck.*', ...}}``:
  ``convert_mmdet2_checkpoint``, as ``tools/model_converters/mmdet2_to_stm_mm.py``.

Anything else is returned unchanged.
"""
import functools
import re
import warnings
from pathlib import Path

from .transfer import convert_mmdet2_checkpoint, official_checkpoint_to_stm_mm

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
             'stm_mm.transfer.official_checkpoint_to_stm_mm')
        return official_checkpoint_to_stm_mm(checkpoint, use_ema=weights[0] == 'model_ema')
    if _has_key(checkpoint.get('state_dict'), _AUTHORS_DET_KEY):
        _log("the authors' mmdet 2.x detector: converting it with "
             'stm_mm.transfer.convert_mmdet2_checkpoint')
        return convert_mmdet2_checkpoint(checkpoint)[0]
    return checkpoint


def _converting(loader):
    """``loader`` (an MMEngine scheme function) followed by :func:`to_stm_mm_layout`."""

    @functools.wraps(loader)  # keeps the name MMEngine logs ("Loads checkpoint by ... backend")
    def load(filename, map_location=None, *args, **kwargs):
        return to_stm_mm_layout(loader(filename, map_location, *args, **kwargs))

    load.converts_authors_layout = True
    return load


def register_checkpoint_loaders():
    """Wrap the local and http(s) schemes of MMEngine's ``CheckpointLoader`` (once each).

    Run after anything that installs other loaders for these schemes (``stm_mm/__init__.py``
    calls it last), or those replace the wrappers.
    """
    from mmengine.runner import CheckpointLoader
    for prefix in ('', 'http://', 'https://'):
        loader = CheckpointLoader._get_checkpoint_loader(prefix)
        if not getattr(loader, 'converts_authors_layout', False):
            CheckpointLoader.register_scheme(prefix, _converting(loader), force=True)


def register_model_zoo():
    """Add the classifiers of ``stm_mm/.mim/configs/cls/metafile.yml`` to mmpretrain's ``ModelHub``.

    Config paths in the metafile are relative to ``stm_mm/.mim``. Warns (and registers nothing)
    when the metafile is missing; does nothing when the zoo is already registered.
    """
    from mmpretrain.apis import ModelHub
    if ModelHub.has('u-halo-tiny_in1k'):
        return
    if not CLS_METAFILE.is_file():
        warnings.warn(f"stm_mm's model zoo is empty: {CLS_METAFILE} is missing (this stm_mm was "
                      'installed without its configs); reinstall it from a checkout: '
                      '`pip install -e .`, or `pip wheel .` and install the wheel')
        return
    ModelHub.register_model_index(CLS_METAFILE, config_prefix=MIM_ROOT)
