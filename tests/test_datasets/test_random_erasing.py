"""``TimmRandomErasing`` against timm's rule, statistically and through the real data path.

The rule (timm ``RandomErasing``, ``mode='pixel'``, one box): with probability p, up to 10 tries
of an area fraction a ~ U(a0, a1) and a log-aspect l = log(h / w) ~ U(L0, L1); a try is accepted
when round(sqrt(a*A*e^l)) < H and round(sqrt(a*A/e^l)) < W (A = H*W), i.e. when
sqrt(a*A*e^l) < H - 1/2 and sqrt(a*A/e^l) < W - 1/2. The accepted (a, l) is therefore uniform on
the accepted region R of the (a, l) rectangle, and a try is accepted with probability
|R| / |rectangle|. The tests below compare the transform's boxes with these exact
distributions (the realised box is rounded to pixels: at the sizes used, h, w >= 79, that moves
a and l by < 1.3 % in a zero-mean way, far below what the tests resolve).

Thresholds, fixed before any result was looked at: every test of the rule must give a p-value
above 1e-3 (a correct implementation fails one check with probability 1e-3 per fresh seed; the
seeds are fixed, so the outcome is deterministic), and each negative control -- the same
statistic against a wrong rule (no rejection, uniform instead of log-uniform aspect, 9 instead of
10 tries) -- must give a p-value below 1e-3, which shows the checks can fail.
"""
import math

import numpy as np
import pytest
import torch
from scipy import stats

from stm_mm.datasets import TimmRandomErasing

A0, A1 = 0.02, 1. / 3.
L0, L1 = math.log(0.3), math.log(1. / 0.3)
MEAN_BGR = np.array([103.53, 116.28, 123.675], dtype=np.float32)
STD_BGR = np.array([57.375, 57.12, 58.395], dtype=np.float32)
P_MIN = 1e-3        # threshold of every test of the rule and of every negative control
TALL = (4096, 256)  # H / W = 16: a try is accepted with probability ~0.19, no box in ~13 %
DRAWS = 20000


def _region_bounds(img_h, img_w, slack):
    """For the (a, l) rectangle: the accepted l-interval of each a, and a-interval of each l,
    for the rule sqrt(a*A*e^l) < H - slack and sqrt(a*A/e^l) < W - slack."""
    area = img_h * img_w
    h_max, w_max = (img_h - slack) ** 2 / area, (img_w - slack) ** 2 / area

    def l_interval(a):  # a e^l < h_max and a e^-l < w_max
        return np.maximum(L0, np.log(a / w_max)), np.minimum(L1, np.log(h_max / a))

    def a_upper(l):
        return np.minimum.reduce([np.full_like(l, A1), h_max * np.exp(-l), w_max * np.exp(l)])

    return l_interval, a_upper


def _rule_distributions(img_h, img_w, slack=0.5, grid=20001):
    """Exact CDFs of the accepted area fraction and log-aspect, and the per-try acceptance.
    ``slack`` 0.5 is timm's round-then-``<``; -0.5 would be ``<=`` instead."""
    l_interval, a_upper = _region_bounds(img_h, img_w, slack)
    a = np.linspace(A0, A1, grid)
    lo, hi = l_interval(a)
    dens_a = np.clip(hi - lo, 0, None)
    ls = np.linspace(L0, L1, grid)
    dens_l = np.clip(a_upper(ls) - A0, 0, None)

    def cdf(x, dens):
        c = np.concatenate([[0.], np.cumsum((dens[1:] + dens[:-1]) / 2 * np.diff(x))])
        return c[-1], (lambda v, c=c / c[-1]: np.interp(v, x, c))

    mass, cdf_a = cdf(a, dens_a)
    _, cdf_l = cdf(ls, dens_l)
    p_try = mass / ((A1 - A0) * (L1 - L0))
    return cdf_a, cdf_l, p_try


def _sample_boxes(transform, img_h, img_w, n, seed):
    np.random.seed(seed)
    boxes = [transform.sample_box(img_h, img_w) for _ in range(n)]
    return [b for b in boxes if b is not None]


@pytest.fixture(scope='module')
def tall_boxes():
    return _sample_boxes(TimmRandomErasing(), *TALL, DRAWS, seed=0)


def test_accepted_box_distributions(tall_boxes):
    img_h, img_w = TALL
    cdf_a, cdf_l, _ = _rule_distributions(img_h, img_w)
    h = np.array([b[2] for b in tall_boxes], dtype=np.float64)
    w = np.array([b[3] for b in tall_boxes], dtype=np.float64)
    area, log_aspect = h * w / (img_h * img_w), np.log(h / w)

    assert stats.kstest(area, cdf_a).pvalue > P_MIN
    assert stats.kstest(log_aspect, cdf_l).pvalue > P_MIN
    # negative controls: without rejection (mmpretrain clamps instead) a would be U(a0, a1);
    # with a uniform aspect, h / w would be U(0.3, 3.33)
    assert stats.kstest(area, stats.uniform(A0, A1 - A0).cdf).pvalue < P_MIN
    assert stats.kstest(np.exp(log_aspect), stats.uniform(0.3, 1 / 0.3 - 0.3).cdf).pvalue \
        < P_MIN


def test_acceptance_rate_and_placement(tall_boxes):
    img_h, img_w = TALL
    _, _, p_try = _rule_distributions(img_h, img_w)
    accepted = len(tall_boxes)
    assert stats.binomtest(accepted, DRAWS, 1 - (1 - p_try) ** 10).pvalue > P_MIN
    # negative control: 9 tries
    assert stats.binomtest(accepted, DRAWS, 1 - (1 - p_try) ** 9).pvalue < P_MIN

    top, left, h, w = (np.array(v) for v in zip(*tall_boxes))
    assert (h < img_h).all() and (w < img_w).all() and (top >= 0).all() and (left >= 0).all()
    assert (top + h <= img_h).all() and (left + w <= img_w).all()
    # top is uniform on {0, ..., H - h}: spread over [0, 1) with a uniform jitter, then KS
    jitter = np.random.default_rng(1).random((2, len(h)))
    assert stats.kstest((top + jitter[0]) / (img_h - h + 1), 'uniform').pvalue > P_MIN
    assert stats.kstest((left + jitter[1]) / (img_w - w + 1), 'uniform').pvalue > P_MIN


def test_boxes_must_fit_strictly():
    """A 64 x 4 image, where rounding decides most tries: boxes reach H - 1 / W - 1 but never
    H / W, and the rate is that of timm's round-then-``<`` (not of ``<=``)."""
    boxes = _sample_boxes(TimmRandomErasing(), 64, 4, 3000, seed=2)
    assert max(b[3] for b in boxes) == 3
    _, _, p_try = _rule_distributions(64, 4)
    assert stats.binomtest(len(boxes), 3000, 1 - (1 - p_try) ** 10).pvalue > P_MIN
    _, _, p_le = _rule_distributions(64, 4, slack=-0.5)  # negative control: ``<=``
    assert stats.binomtest(len(boxes), 3000, 1 - (1 - p_le) ** 10).pvalue < P_MIN


def test_erase_probability():
    transform = TimmRandomErasing(erase_prob=0.25)
    img = np.zeros((40, 40, 3), dtype=np.uint8)
    np.random.seed(3)
    erased = sum(transform(dict(img=img))['img'].dtype == np.float32 for _ in range(4000))
    _, _, p_try = _rule_distributions(40, 40)
    assert stats.binomtest(erased, 4000, 0.25 * (1 - (1 - p_try) ** 10)).pvalue > P_MIN
    assert stats.binomtest(erased, 4000, 0.5).pvalue < P_MIN  # negative control


def test_fill_is_unclipped_normal_in_normalised_space():
    transform = TimmRandomErasing(erase_prob=1.0)
    rng = np.random.default_rng(4)
    z = []
    np.random.seed(4)
    for _ in range(30):
        img = rng.integers(0, 256, (64, 48, 3), dtype=np.uint8)
        out = transform(dict(img=img.copy()))['img']
        assert out.dtype == np.float32 and out.shape == img.shape
        changed = (out != img).any(axis=2)
        rows, cols = np.nonzero(changed.any(axis=1))[0], np.nonzero(changed.any(axis=0))[0]
        # one solid rectangle that fits strictly, everything else untouched
        box = np.zeros_like(changed)
        box[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1] = True
        assert np.array_equal(changed, box)
        assert len(rows) < 64 and len(cols) < 48
        np.testing.assert_array_equal(out[~box], img[~box])
        z.append((out[box] - MEAN_BGR) / STD_BGR)
    z = np.concatenate(z)  # (pixels, 3)
    for channel in range(3):
        assert stats.kstest(z[:, channel], 'norm').pvalue > P_MIN
    # negative control: timm's fill is N(0, 1), not N(0, 1.1)
    assert stats.kstest(z.ravel(), stats.norm(0, 1.1).cdf).pvalue < P_MIN
    # unclipped: beyond what a uint8 pixel can hold, on both sides
    pixels = MEAN_BGR + STD_BGR * z
    assert (pixels < 0).any() and (pixels > 255).any()


def test_preprocessor_turns_the_fill_into_timm_noise():
    """PackInputs + pseudo_collate + ClsDataPreprocessor (the ImageNet configs' path) give the
    erased region exactly (fill - mean) / std, in RGB order and unclipped; a uint8 image in the
    same batch is normalised as usual."""
    from mmengine.dataset import pseudo_collate
    from mmpretrain.datasets.transforms import PackInputs
    from mmpretrain.models import ClsDataPreprocessor

    rng = np.random.default_rng(5)
    plain = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    np.random.seed(5)
    erased = TimmRandomErasing(erase_prob=1.0)(dict(img=plain.copy()))['img']
    pack = PackInputs()
    batch = pseudo_collate([pack(dict(img=erased, gt_label=0)), pack(dict(img=plain, gt_label=1))])
    pre = ClsDataPreprocessor(mean=MEAN_BGR[::-1].tolist(), std=STD_BGR[::-1].tolist(),
                              to_rgb=True)
    inputs = pre(batch)['inputs']

    expected = np.stack([(erased - MEAN_BGR) / STD_BGR, (plain - MEAN_BGR) / STD_BGR])
    expected = torch.from_numpy(expected[..., ::-1].copy()).permute(0, 3, 1, 2).float()
    torch.testing.assert_close(inputs, expected)
    lowest_uint8 = -(MEAN_BGR / STD_BGR).max()
    assert inputs[0].min() < lowest_uint8  # the noise went below what 0..255 can give


def test_invalid_arguments():
    with pytest.raises(ValueError, match='erase_prob'):
        TimmRandomErasing(erase_prob=1.5)
    with pytest.raises(ValueError, match='area ratios'):
        TimmRandomErasing(min_area_ratio=0.5, max_area_ratio=0.1)
    with pytest.raises(ValueError, match='channel'):
        TimmRandomErasing(erase_prob=1.0)(dict(img=np.zeros((20, 20, 4), np.uint8)))


def test_imagenet_configs_use_it():
    import os.path as osp

    from mmengine.config import Config
    from mmengine.registry import TRANSFORMS

    from .. import ROOT
    cfg = Config.fromfile(osp.join(ROOT, 'configs', '_base_', 'datasets',
                                   'imagenet_bs128_unified.py'))
    types = [t['type'] for t in cfg.train_pipeline]
    assert 'RandomErasing' not in types
    erasing = TRANSFORMS.build(cfg.train_pipeline[types.index('TimmRandomErasing')])
    assert (erasing.erase_prob, erasing.area_range, erasing.max_attempts) == (0.25, (A0, A1), 10)
    assert erasing.log_aspect_range == pytest.approx((L0, L1))
    # the fill statistics are the preprocessor's, in the loaded image's BGR order
    pre = cfg.data_preprocessor
    assert pre.to_rgb and np.allclose(erasing.mean, pre.mean[::-1])
    assert np.allclose(erasing.std, pre.std[::-1])
