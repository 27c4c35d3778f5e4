"""``TimmRandomErasing``: timm's random erasing rule on the image before normalisation.

timm's ``RandomErasing(probability=p, mode='pixel', count=1)`` (what the authors ran, on the
normalised tensor) and mmpretrain's ``RandomErasing`` differ in two ways:

* geometry: timm draws up to 10 boxes and rejects each one that does not fit (``h < H`` and
  ``w < W``); if none fits the image is left alone. mmpretrain clamps an oversized box to the
  image size instead, which turns it into a full-height or full-width stripe;
* fill: timm fills with N(0, 1) per pixel and channel in normalised space, unclipped.
  mmpretrain draws N(mean, std) on the uint8 image and clips it to 0..255.

This transform keeps timm's rule and fills with ``mean + std * N(0, 1)`` as float32 on the
un-normalised image: the data preprocessor's ``(x - mean) / std`` (same mean/std, same channel
order) turns that into timm's N(0, 1), unclipped, because ``PackInputs`` keeps the float dtype
and the preprocessor only casts to float before normalising.
"""
import math

import numpy as np
from mmcv.transforms import BaseTransform
from mmengine.registry import TRANSFORMS


@TRANSFORMS.register_module()
class TimmRandomErasing(BaseTransform):
    """Erase one random box with timm's sampling and an unclipped per-pixel normal fill.

    With probability ``erase_prob``, up to ``max_attempts`` times: area fraction
    ``a ~ U(min_area_ratio, max_area_ratio)``, aspect ``r = exp(U(log r0, log r1))``
    (height / width), ``h = round(sqrt(a*H*W*r))``, ``w = round(sqrt(a*H*W/r))``; the first box
    with ``h < H`` and ``w < W`` gets a uniform position and is filled per pixel and channel
    with ``mean + std * N(0, 1)``.

    Required keys: ``img`` (H, W, C). Modified keys: ``img`` (float32 where a box was erased).

    Args:
        erase_prob (float): probability of trying to erase (timm ``probability``).
        min_area_ratio, max_area_ratio (float): box area as a fraction of the image area.
        aspect_range (tuple[float]): range of height / width, sampled log-uniformly.
        mean, std (sequence[float]): the preprocessor's mean and std in the image's channel
            order (BGR for ``LoadImageFromFile``), one value per channel.
        max_attempts (int): boxes drawn before giving up (timm: 10).
    """

    def __init__(self, erase_prob=0.25, min_area_ratio=0.02, max_area_ratio=1. / 3.,
                 aspect_range=(0.3, 1. / 0.3), mean=(103.53, 116.28, 123.675),
                 std=(57.375, 57.12, 58.395), max_attempts=10):
        if not 0. <= erase_prob <= 1.:
            raise ValueError(f'TimmRandomErasing erase_prob={erase_prob} is not a '
                             'probability; fix: use a value in [0, 1]')
        if not 0. < min_area_ratio <= max_area_ratio <= 1.:
            raise ValueError(f'TimmRandomErasing area ratios ({min_area_ratio}, '
                             f'{max_area_ratio}) are invalid; fix: 0 < min <= max <= 1')
        if not 0. < aspect_range[0] <= aspect_range[1]:
            raise ValueError(f'TimmRandomErasing aspect_range={aspect_range} is '
                             'invalid; fix: 0 < low <= high')
        if len(mean) != len(std):
            raise ValueError(f'TimmRandomErasing has {len(mean)} mean but {len(std)} '
                             'std values; fix: give one of each per channel')
        self.erase_prob = erase_prob
        self.area_range = (min_area_ratio, max_area_ratio)
        self.log_aspect_range = (math.log(aspect_range[0]), math.log(aspect_range[1]))
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        self.max_attempts = max_attempts

    def sample_box(self, img_h, img_w):
        """``(top, left, h, w)`` of the box timm's rule accepts, or None if no try fits."""
        area = img_h * img_w
        for _ in range(self.max_attempts):
            target_area = np.random.uniform(*self.area_range) * area
            aspect = math.exp(np.random.uniform(*self.log_aspect_range))
            h = int(round(math.sqrt(target_area * aspect)))
            w = int(round(math.sqrt(target_area / aspect)))
            if h < img_h and w < img_w:
                top = np.random.randint(0, img_h - h + 1)
                left = np.random.randint(0, img_w - w + 1)
                return top, left, h, w
        return None

    def transform(self, results):
        if np.random.rand() > self.erase_prob:
            return results
        img = results['img']
        channels = 1 if img.ndim == 2 else img.shape[2]
        if channels != len(self.mean):
            raise ValueError(f'TimmRandomErasing got a {channels}-channel image but '
                             f'{len(self.mean)} mean/std values; fix: set mean and std per '
                             'channel of the image')
        box = self.sample_box(*img.shape[:2])
        if box is None:
            return results
        top, left, h, w = box
        noise = np.random.standard_normal((h, w, channels)).astype(np.float32)
        out = img.astype(np.float32)
        out.reshape(img.shape[0], img.shape[1], channels)[top:top + h, left:left + w] = \
            self.mean + self.std * noise
        results['img'] = out
        return results

    def __repr__(self):
        return (f'{self.__class__.__name__}(erase_prob={self.erase_prob}, '
                f'area_range={self.area_range}, aspect_range='
                f'{tuple(round(math.exp(x), 4) for x in self.log_aspect_range)}, '
                f'max_attempts={self.max_attempts})')
