"""Digit scenes: an embedded COCO-format instance-segmentation set built from real digit scans.

Every image is a ``size x size`` RGB scene (128 by default) on a varied background (flat colour,
two-colour gradient, smooth colour noise or stripes, plus pixel noise) with 1 to ``max_digits``
handwritten digits from scikit-learn's ``load_digits()`` (1,797 real 8x8 scans, no download)
pasted at random positions and scales (``digit_size`` pixels, slightly varied aspect ratio) in a
random colour. As in the scans (and the classification digits a backbone is pretrained on), the
strokes are brighter than what lies under them: backgrounds use colour channels up to 0.6 and the
ink's luma exceeds the upper quartile of the background under it by at least 0.3. Digits never overlap (their boxes keep a
2-pixel gap), so every mask is exactly the visible ink.

Masks come from the strokes: the scan is upsampled (bicubic) to the pasted size and thresholded;
the same soft map blends the ink into the background. Category = the digit (10 classes, names
'0' ... '9', COCO category ids 1 ... 10). Masks are stored as compressed RLE (digits such as 0,
6, 8, 9 have holes, which polygons cannot express); ``bbox`` is the tight box of the mask and
``area`` its pixel count.

**Close-ups** fill COCO's "medium" and "large" size buckets (mask area 32^2-96^2 and above 96^2
px), which the scenes barely or never reach (a 52 px digit has at most ~1,500 ink pixels; 97 % of
the scenes' digits are "small"): after the ``num`` scenes of a split come
``round(close_up_fraction * num)`` close-ups, ``2 * size`` pixels wide (256 by default) with one
digit of 30-86 % of that side (77-220 px; the default validation split gets 45 close-ups: 26
medium and 19 large digits, next to 363 small and 10 medium ones in its 150 scenes). They are
drawn after the regular scenes from the same generator, so the regular scenes are the same files
as without them, and the test pipeline resizes them to ``size`` like any image.
``close_up_fraction=0`` gives the set of the first version (before close-ups: APl was -1).

The scans are split like the classification digits (stratified 80/20, ``random_state=seed``):
training scenes only use training scans and validation scenes only validation scans, so a
backbone pretrained on the classification split never saw a validation digit.

Layout written by :func:`generate_digit_scenes`::

    <out_dir>/annotations/instances_train.json, instances_val.json
    <out_dir>/train/000000.png ...,  <out_dir>/val/000000.png ...
    <out_dir>/digit_scenes_info.json   settings and counts; marks a complete conversion
"""
import json
import os
import os.path as osp

import numpy as np

CLASSES = tuple(str(i) for i in range(10))
BACKGROUND_MAX = 0.6  # background colours stay darker than the ink (bright strokes, as the scans)
INFO_FILE = 'digit_scenes_info.json'
DEFAULTS = dict(num_train=600, num_val=150, image_size=128, max_digits=4,
                digit_size=(20, 52), seed=0, close_up_fraction=0.3)
CLOSE_UP_DIGIT = (0.3, 0.86)  # digit side in a close-up, as fractions of its side


def _digit_scans(seed):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    digits = load_digits()
    images = digits.images.astype(np.float32) / 16.0
    labels = digits.target.astype(np.int64)
    train, val = train_test_split(np.arange(len(labels)), test_size=0.2, stratify=labels,
                                  random_state=seed)
    return images, labels, np.sort(train), np.sort(val)


def _colour(rng, top=BACKGROUND_MAX):
    return rng.uniform(0, top, 3)


def _background(rng, size):
    """A float RGB background in [0, BACKGROUND_MAX] (+ noise), ``(size, size, 3)``."""
    kind = rng.integers(4)
    if kind == 0:  # flat colour
        bg = np.ones((size, size, 3), np.float32) * _colour(rng)
    elif kind == 1:  # linear gradient between two colours in a random direction
        angle = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1)
        t = (np.cos(angle) * xx + np.sin(angle) * yy)
        t = (t - t.min()) / max(t.max() - t.min(), 1e-6)
        c0, c1 = _colour(rng), _colour(rng)
        bg = c0 + t[..., None] * (c1 - c0)
    elif kind == 2:  # smooth colour noise
        import cv2
        cells = int(rng.integers(2, 6))
        grid = rng.uniform(0, BACKGROUND_MAX, (cells, cells, 3)).astype(np.float32)
        bg = cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)
    else:  # stripes of two colours
        period = rng.uniform(8, 32)
        angle = rng.uniform(0, np.pi)
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        t = ((np.cos(angle) * xx + np.sin(angle) * yy) / period) % 1.0 < 0.5
        c0, c1 = _colour(rng), _colour(rng)
        bg = np.where(t[..., None], c0, c1)
    bg = bg + rng.normal(0, rng.uniform(0, 0.04), (size, size, 3))
    return np.clip(bg, 0, 1).astype(np.float32)


def _luma(rgb):
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def _ink_colour(rng, under):
    """A colour at least 0.3 brighter (luma) than the brightest quarter of ``under``."""
    ref = float(np.quantile(_luma(under), 0.75))
    for _ in range(50):
        colour = rng.uniform(0.25, 1, 3)
        if float(_luma(colour)) - ref >= 0.3:
            return colour
    return np.ones(3)


def _render_digit(scan, height, width):
    """8x8 scan in [0, 1] -> (soft ink map in [0, 1], binary stroke mask), ``(height, width)``."""
    import cv2
    up = cv2.resize(scan, (width, height), interpolation=cv2.INTER_CUBIC)
    up = np.clip(up, 0, 1)
    mask = up > 0.4
    alpha = np.clip((up - 0.25) / 0.3, 0, 1)
    alpha[mask] = np.maximum(alpha[mask], 0.5)
    return alpha.astype(np.float32), mask


def make_scene(rng, scans, labels, pool, image_size=128, max_digits=4, digit_size=(20, 52)):
    """One scene: ``(uint8 RGB image, [(label, bool mask), ...])``."""
    image = _background(rng, image_size)
    boxes, instances = [], []
    for _ in range(int(rng.integers(1, max_digits + 1))):
        index = int(pool[rng.integers(len(pool))])
        side = int(rng.integers(digit_size[0], digit_size[1] + 1))
        aspect = rng.uniform(0.75, 1.15)
        h, w = side, max(8, int(round(side * aspect)))
        for _ in range(50):
            y, x = int(rng.integers(0, image_size - h + 1)), int(rng.integers(0, image_size - w + 1))
            if all(x + w + 2 <= bx or bx + bw + 2 <= x or y + h + 2 <= by or by + bh + 2 <= y
                   for bx, by, bw, bh in boxes):
                break
        else:
            continue
        alpha, stroke = _render_digit(scans[index], h, w)
        if stroke.sum() < 12:
            continue
        region = image[y:y + h, x:x + w]
        colour = _ink_colour(rng, region)
        image[y:y + h, x:x + w] = region * (1 - alpha[..., None]) + colour * alpha[..., None]
        mask = np.zeros((image_size, image_size), bool)
        mask[y:y + h, x:x + w] = stroke
        boxes.append((x, y, w, h))
        instances.append((int(labels[index]), mask))
    image = np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return image, instances


def _annotation(mask, label, ann_id, image_id):
    from pycocotools import mask as mask_utils
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle['counts'] = rle['counts'].decode('ascii')
    ys, xs = np.nonzero(mask)
    x0, y0 = int(xs.min()), int(ys.min())
    return dict(id=ann_id, image_id=image_id, category_id=label + 1, segmentation=rle,
                area=float(mask.sum()),
                bbox=[float(x0), float(y0), float(xs.max() - x0 + 1), float(ys.max() - y0 + 1)],
                iscrowd=0)


def _scene_kinds(num_images, settings):
    """``(image_size, max_digits, digit_size)`` of every scene of a split: the regular scenes,
    then the close-ups (see the module docstring)."""
    size = settings['image_size']
    regular = (size, settings['max_digits'], settings['digit_size'])
    close = 2 * size
    close_up = (close, 1, tuple(int(round(f * close)) for f in CLOSE_UP_DIGIT))
    num_close = int(round(settings['close_up_fraction'] * num_images))
    return [regular] * num_images + [close_up] * num_close


def _write_split(out_dir, split, num_images, rng, scans, labels, pool, settings):
    import cv2
    os.makedirs(osp.join(out_dir, split), exist_ok=True)
    images, annotations = [], []
    for image_id, (size, max_digits, digit_size) in enumerate(_scene_kinds(num_images,
                                                                            settings)):
        image, instances = make_scene(rng, scans, labels, pool, size, max_digits, digit_size)
        file_name = f'{image_id:06d}.png'
        cv2.imwrite(osp.join(out_dir, split, file_name), image[..., ::-1])
        images.append(dict(id=image_id, file_name=file_name, width=image.shape[1],
                           height=image.shape[0]))
        for label, mask in instances:
            annotations.append(_annotation(mask, label, len(annotations) + 1, image_id))
    coco = dict(
        info=dict(description=f'digit scenes ({split}): scikit-learn digit scans pasted on '
                  'synthetic backgrounds', version='1.0'),
        licenses=[], images=images, annotations=annotations,
        categories=[dict(id=i + 1, name=name, supercategory='digit')
                    for i, name in enumerate(CLASSES)])
    os.makedirs(osp.join(out_dir, 'annotations'), exist_ok=True)
    with open(osp.join(out_dir, 'annotations', f'instances_{split}.json'), 'w') as f:
        json.dump(coco, f)
    return len(images), len(annotations)


def read_info(out_dir):
    """The info file of a finished generation, or None."""
    path = osp.join(out_dir, INFO_FILE)
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def generate_digit_scenes(out_dir, num_train=DEFAULTS['num_train'], num_val=DEFAULTS['num_val'],
                          image_size=DEFAULTS['image_size'], max_digits=DEFAULTS['max_digits'],
                          digit_size=DEFAULTS['digit_size'], seed=DEFAULTS['seed'],
                          close_up_fraction=DEFAULTS['close_up_fraction'], force=False):
    """Write the data set (see the module docstring); returns the info dict.

    Does nothing (returns the existing info) when ``out_dir`` already holds a generation with
    the same settings, unless ``force``. Same settings -> byte-identical annotation files.
    """
    digit_size = tuple(int(v) for v in digit_size)
    if not 8 <= digit_size[0] <= digit_size[1] <= image_size:
        raise ValueError(f'digit_size must satisfy 8 <= min <= max <= image_size, '
                         f'got {digit_size} for image_size {image_size}')
    if not 0 <= close_up_fraction <= 10:
        raise ValueError(f'close_up_fraction must lie in [0, 10], got {close_up_fraction}')
    settings = dict(num_train=int(num_train), num_val=int(num_val), image_size=int(image_size),
                    max_digits=int(max_digits), digit_size=list(digit_size), seed=int(seed),
                    close_up_fraction=float(close_up_fraction))
    info = read_info(out_dir)
    if info is not None and not force and info.get('settings') == settings:
        return info
    if osp.isfile(osp.join(out_dir, INFO_FILE)):
        os.remove(osp.join(out_dir, INFO_FILE))
    scans, labels, train_pool, val_pool = _digit_scans(seed)
    rng = np.random.default_rng(seed)
    counts = {}
    for split, num, pool in (('train', num_train, train_pool), ('val', num_val, val_pool)):
        split_rng = np.random.default_rng(rng.integers(2**31))
        n_images, n_instances = _write_split(out_dir, split, num, split_rng, scans, labels,
                                             pool, dict(settings, digit_size=digit_size))
        counts[split] = dict(images=n_images, instances=n_instances)
    info = dict(settings=settings, counts=counts, classes=list(CLASSES),
                annotations={s: f'annotations/instances_{s}.json' for s in ('train', 'val')},
                images={s: f'{s}/' for s in ('train', 'val')})
    with open(osp.join(out_dir, INFO_FILE), 'w') as f:
        json.dump(info, f, indent=1)
    return info
