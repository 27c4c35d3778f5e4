"""The authors' 20 classification state-dict layouts (key -> shape), vendored in ``tests/data``.

``tests/data/official_keys.json.gz`` is written by ``tests/data/make_official_keys.py``, which
says where the facts come from. A missing or unreadable file is an error, never a skip.
"""
import functools
import gzip
import json
import os.path as osp

DATA_FILE = osp.join(osp.dirname(osp.abspath(__file__)), 'data', 'official_keys.json.gz')
# stm_mm mixer name -> the authors' timm factory name (``unified_<name>_<scale>``).
OFFICIAL_NAME = dict(halo='halo', pvt='pvt', swin='swin', dwconv='convnext', dcnv3='dcn_v3')


@functools.lru_cache(maxsize=None)
def _models():
    with gzip.open(DATA_FILE, 'rt') as f:
        return json.load(f)['models']


def official_keys(stm, scale):
    """``{key: shape}`` of the authors' ``unified_<stm>_<scale>`` in registration order."""
    return {key: tuple(shape) for key, shape in _models()[f'unified_{OFFICIAL_NAME[stm]}_{scale}']}
