"""The embedded default classification dataset: scikit-learn's handwritten digits.

``sklearn.datasets.load_digits()`` ships with scikit-learn (no download): 1,797 real 8x8 scans
of handwritten digits (UCI "Optical Recognition of Handwritten Digits", 16 grey levels, about
180 per class). :func:`write_digits_imagefolder` writes them as an ImageNet-style image folder
that mmpretrain's ``CustomDataset`` reads without any annotation file::

    <out_dir>/train/<class>/<index>.png     class folders '0' ... '9' (sorted = label order)
    <out_dir>/val/<class>/<index>.png
    <out_dir>/meta/{train,val}.txt          "<class>/<index>.png <label>" (ImageNet-style lists)
    <out_dir>/digits_info.json              what was written (size, seed, counts); its presence
                                            marks a complete conversion

Each 8x8 scan is scaled from 0..16 to 0..255 (bright ink on black, like the raw data), upsampled
with bicubic interpolation to ``size x size`` and stored as an RGB PNG (three equal channels, so
the ImageNet-style 3-channel models take it unchanged). The split is stratified and seeded: the
same ``(val_fraction, seed)`` always gives the same files. ``<index>`` is the sample's index in
``load_digits()``, so any file can be traced back to the original array.
"""
import json
import os
import os.path as osp
import shutil

import numpy as np

INFO_FILE = 'digits_info.json'
NUM_CLASSES = 10
CLASSES = tuple(str(i) for i in range(NUM_CLASSES))


def load_digit_arrays():
    """``(images, labels)``: float arrays ``(1797, 8, 8)`` in 0..16 and int ``(1797,)``."""
    from sklearn.datasets import load_digits
    digits = load_digits()
    return digits.images.astype(np.float32), digits.target.astype(np.int64)


def digit_to_image(scan, size=32):
    """One 8x8 scan (values 0..16) -> RGB ``PIL.Image`` of ``size x size``."""
    from PIL import Image
    scan = np.asarray(scan, dtype=np.float32)
    grey = np.clip(np.rint(scan * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    image = Image.fromarray(grey)  # uint8 2-D -> mode 'L'
    if size != grey.shape[0]:
        image = image.resize((size, size), Image.BICUBIC)
    return image.convert('RGB')


def split_indices(labels, val_fraction=0.2, seed=0):
    """Stratified, seeded split -> sorted ``(train_indices, val_indices)``."""
    from sklearn.model_selection import train_test_split
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f'val_fraction must lie in (0, 1), got {val_fraction}')
    indices = np.arange(len(labels))
    train, val = train_test_split(indices, test_size=val_fraction, stratify=labels,
                                  random_state=seed)
    return np.sort(train), np.sort(val)


def _limit_per_class(indices, labels, limit):
    if limit is None:
        return indices
    kept, counts = [], {}
    for i in indices:
        if counts.get(labels[i], 0) < limit:
            kept.append(i)
            counts[labels[i]] = counts.get(labels[i], 0) + 1
    return np.asarray(kept, dtype=np.int64)


def read_info(out_dir):
    """The ``digits_info.json`` of a finished conversion, or None."""
    path = osp.join(out_dir, INFO_FILE)
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def is_converted(out_dir, size=None):
    """True when ``out_dir`` holds a complete conversion (of the given image size)."""
    info = read_info(out_dir)
    if info is None:
        return False
    if size is not None and info.get('size') != size:
        return False
    for split in ('train', 'val'):
        found = sum(len(files) for _, _, files in os.walk(osp.join(out_dir, split)))
        if found != info['counts'][split]:
            return False
    return True


def write_digits_imagefolder(out_dir, size=32, val_fraction=0.2, seed=0, per_class_limit=None,
                             overwrite=False):
    """Write the digits as an image folder; returns the info dict (also saved as JSON).

    Args:
        out_dir: destination (created). An existing complete conversion with the same
            settings is kept unless ``overwrite``.
        size: side of the written RGB PNGs (8 keeps the original resolution).
        val_fraction: share of every class that goes to ``val`` (stratified).
        seed: seed of the split.
        per_class_limit: keep at most this many images per class and split (tiny test sets).
        overwrite: rewrite even when a matching conversion exists.
    """
    settings = dict(size=int(size), val_fraction=float(val_fraction), seed=int(seed),
                    per_class_limit=per_class_limit)
    info = read_info(out_dir)
    if (not overwrite and info is not None and is_converted(out_dir)
            and all(info.get(k) == v for k, v in settings.items())):
        return info
    if osp.isfile(osp.join(out_dir, INFO_FILE)):
        os.remove(osp.join(out_dir, INFO_FILE))  # incomplete until rewritten below
    for sub in ('train', 'val', 'meta'):  # no stale images from other settings
        if osp.isdir(osp.join(out_dir, sub)):
            shutil.rmtree(osp.join(out_dir, sub))

    images, labels = load_digit_arrays()
    splits = dict(zip(('train', 'val'), split_indices(labels, val_fraction, seed)))
    counts = {}
    os.makedirs(osp.join(out_dir, 'meta'), exist_ok=True)
    for split, indices in splits.items():
        indices = _limit_per_class(indices, labels, per_class_limit)
        for cls in CLASSES:
            os.makedirs(osp.join(out_dir, split, cls), exist_ok=True)
        lines = []
        for i in indices:
            rel = f'{labels[i]}/{i:04d}.png'
            digit_to_image(images[i], size).save(osp.join(out_dir, split, rel))
            lines.append(f'{rel} {labels[i]}\n')
        with open(osp.join(out_dir, 'meta', f'{split}.txt'), 'w') as f:
            f.writelines(lines)
        counts[split] = len(indices)

    info = dict(settings, source='sklearn.datasets.load_digits', classes=list(CLASSES),
                counts=counts)
    with open(osp.join(out_dir, INFO_FILE), 'w') as f:
        json.dump(info, f, indent=2)
    return info
