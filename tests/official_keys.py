"""The authors' 20 classification state-dict layouts (key -> shape), vendored in ``tests/data``,
and their parameter counts.

``tests/data/official_keys.json.gz`` is written by ``tests/data/make_official_keys.py``, which
says where the facts come from. A missing or unreadable file is an error, never a skip.
"""
import functools
import gzip
import json
import os.path as osp

DATA_FILE = osp.join(osp.dirname(osp.abspath(__file__)), 'data', 'official_keys.json.gz')
# All parameters of the authors' models with a 1000-class head (counted on the authors' code).
OFFICIAL_PARAMS = {
    ('halo', 'micro'): 4_389_672, ('halo', 'tiny'): 31_523_176,
    ('halo', 'small'): 52_831_336, ('halo', 'base'): 93_327_336,
    ('pvt', 'micro'): 4_454_056, ('pvt', 'tiny'): 31_157_736,
    ('pvt', 'small'): 50_887_656, ('pvt', 'base'): 91_566_312,
    ('swin', 'micro'): 4_381_042, ('swin', 'tiny'): 31_540_546,
    ('swin', 'small'): 52_867_666, ('swin', 'base'): 93_388_576,
    ('dwconv', 'micro'): 4_439_624, ('dwconv', 'tiny'): 31_912_360,
    ('dwconv', 'small'): 54_393_640, ('dwconv', 'base'): 95_865_576,
    ('dcnv3', 'micro'): 4_302_692, ('dcnv3', 'tiny'): 29_933_272,
    ('dcnv3', 'small'): 50_082_280, ('dcnv3', 'base'): 97_465_192,
}
# stm_mm mixer name -> the authors' timm factory name (``unified_<name>_<scale>``).
OFFICIAL_NAME = dict(halo='halo', pvt='pvt', swin='swin', dwconv='convnext', dcnv3='dcn_v3')


@functools.lru_cache(maxsize=None)
def _models():
    with gzip.open(DATA_FILE, 'rt') as f:
        return json.load(f)['models']


def official_keys(stm, scale):
    """``{key: shape}`` of the authors' ``unified_<stm>_<scale>`` in registration order."""
    return {key: tuple(shape) for key, shape in _models()[f'unified_{OFFICIAL_NAME[stm]}_{scale}']}
