"""Effective receptive field (ERF) of every stage, as in section 6 of the paper.

The ERF of a stage is the gradient map of its centre unit with respect to the input image (Luo et
al., NeurIPS 2016; the ERF tool of RepLKNet): for each image, the response ``r`` is the stage
output at the centre position ``(H_i // 2, W_i // 2)`` summed over channels, by default after a
ReLU as in RepLKNet's tool (``relu=False`` gives the plain sum); the map is ``|d r / d x|``
summed over the input channels, averaged over images.

Why the ReLU by default: every stage output of the unified backbone (and of most modern
backbones) ends in a LayerNorm over channels. The channel sum of a LayerNorm output is
``sum_c(w_c * z_c + b_c)`` with ``sum_c z_c = 0``; for initialised weights (``w = 1``, ``b = 0``)
it is identically zero and so is its gradient, and for trained ones it only measures the spread
of ``w``. The rectified sum does not vanish. ``ERF@p`` is the side of
the smallest square centred on the input pixel ``(H // 2, W // 2)`` whose sum reaches ``p`` of
the map's total, divided by the input side (squares have odd sides 1, 3, 5, ..., clipped to the
image; a side larger than the image counts as the image side).

This module also holds the image sources shared with :mod:`.invariance` (an image folder, the
embedded sklearn digits, or generated images); models come from :mod:`.loaded_model`, and
:mod:`.erf_report` computes, saves and plots the ERF of whole models.
"""
import os
import os.path as osp

import numpy as np
import torch
import torch.nn as nn

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.ppm', '.pgm', '.tif', '.tiff', '.webp',
                    '.JPEG')


# --------------------------------------------------------------------------------------------
# ERF maths
# --------------------------------------------------------------------------------------------
def centre_response(feature, relu=False):
    """Per-image response of the centre unit: ``(B, C, H, W)`` -> ``(B,)``, the channel sum at
    ``(H // 2, W // 2)`` (with ``relu``: of the rectified output, RepLKNet's variant)."""
    if feature.dim() != 4:
        raise ValueError(f'expected a (B, C, H, W) feature map, got shape {tuple(feature.shape)}')
    centre = feature[:, :, feature.shape[2] // 2, feature.shape[3] // 2]
    if relu:
        centre = torch.relu(centre)
    return centre.sum(dim=1)


def _as_feature_list(outputs):
    if isinstance(outputs, torch.Tensor):
        return [outputs]
    return list(outputs)


def erf_maps(model, batches, relu=True, progress=False):
    """Average ERF maps of every output of ``model``.

    Args:
        model: callable ``(B, C, H, W) -> tensor or sequence of (B, C_i, H_i, W_i)`` maps (e.g. a
            ``UnifiedBackbone`` with ``out_indices=(0, 1, 2, 3)``); run as is (call ``eval()``
            first). Images of a batch must not interact (no BatchNorm in train mode), since one
            backward pass of the summed responses gives every image's own gradient.
        batches: iterable of image batches ``(B, C, H, W)`` (already normalised), all of one
            size.
        relu: rectify the centre unit's output before summing its channels (RepLKNet; see the
            module docstring); False: the plain channel sum.
        progress: show a progress bar over the batches.

    Returns:
        ``(maps, count)``: ``maps`` a float64 array ``(num_outputs, H, W)`` of
        ``|gradient|`` summed over the input channels and averaged over the ``count`` images.
    """
    total, count = None, 0
    batches = list(batches) if progress else batches
    bar = progress_bar(len(batches), 'erf') if progress else None
    for x in batches:
        x = x.detach().clone().float().requires_grad_(True)
        with torch.enable_grad():
            features = _as_feature_list(model(x))
            grads = []
            for i, feature in enumerate(features):
                response = centre_response(feature, relu).sum()
                grad, = torch.autograd.grad(response, x, retain_graph=i < len(features) - 1,
                                            allow_unused=True)
                if grad is None:
                    grad = torch.zeros_like(x)
                grads.append(grad.abs().sum(dim=1).sum(dim=0).double().cpu().numpy())
        batch_maps = np.stack(grads)
        total = batch_maps if total is None else total + batch_maps
        count += x.shape[0]
        if bar is not None:
            bar.update()
    if bar is not None:
        bar.close()
    if count == 0:
        raise ValueError('erf_maps got no images')
    return total / count, count


def erf_side(erf_map, fraction=0.5, rtol=1e-9):
    """Side of the smallest odd square centred on pixel ``(H // 2, W // 2)`` of ``erf_map``
    whose sum reaches ``fraction`` of the total (clipped to the image; at most ``max(H, W)``).
    A map that is zero everywhere gives 0."""
    erf_map = np.asarray(erf_map, dtype=np.float64)
    if erf_map.ndim != 2:
        raise ValueError(f'erf_side expects a 2-D map, got shape {erf_map.shape}')
    if not 0 < fraction <= 1:
        raise ValueError(f'fraction must lie in (0, 1], got {fraction}')
    h, w = erf_map.shape
    total = erf_map.sum()
    if total <= 0:
        return 0
    cy, cx = h // 2, w // 2
    target = fraction * total * (1 - rtol)
    side = 1
    while True:
        r = (side - 1) // 2
        area = erf_map[max(cy - r, 0):cy + r + 1, max(cx - r, 0):cx + r + 1].sum()
        if area >= target or (cy - r <= 0 and cx - r <= 0 and cy + r >= h - 1
                              and cx + r >= w - 1):
            return min(side, max(h, w))
        side += 2


def erf_ratio(erf_map, fraction=0.5):
    """``ERF@fraction``: :func:`erf_side` divided by the input side (the larger one)."""
    erf_map = np.asarray(erf_map)
    return erf_side(erf_map, fraction) / max(erf_map.shape)


def log_scaled(erf_map, floor=1e-3):
    """The map divided by its maximum, on a log10 scale clipped at ``log10(floor)`` (the
    display of the paper's Fig. 6)."""
    erf_map = np.asarray(erf_map, dtype=np.float64)
    peak = erf_map.max()
    normed = erf_map / peak if peak > 0 else erf_map
    return np.log10(np.maximum(normed, floor))


# --------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------
def list_images(root):
    """Sorted image files under ``root`` (recursive)."""
    if not osp.isdir(root):
        raise FileNotFoundError(f'image folder {root!r} does not exist')
    files = []
    for dirpath, _, names in os.walk(root, followlinks=True):
        files.extend(osp.join(dirpath, n) for n in names if n.endswith(IMAGE_EXTENSIONS)
                     or n.lower().endswith(IMAGE_EXTENSIONS))
    if not files:
        raise FileNotFoundError(f'no image files ({", ".join(IMAGE_EXTENSIONS[:5])}, ...) '
                                f'under {root!r}')
    return sorted(files)


def evenly_spaced(n_total, n):
    """``n`` indices spread evenly over ``range(n_total)`` (all of them when ``n`` is None or at
    least ``n_total``)."""
    if n is None or n <= 0 or n >= n_total:
        return list(range(n_total))
    return [int(i * n_total / n) for i in range(n)]


def digits_arrays():
    """The sklearn digits (1797 8x8 images, values 0..16) as ``(uint8 images 0..255, labels)``."""
    from sklearn.datasets import load_digits
    data = load_digits()
    images = np.clip(np.round(data.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    return images, data.target.astype(np.int64)


def resize_centre_crop(img, size):
    """PIL image -> shorter side ``size`` (bicubic), centre crop ``size`` x ``size``."""
    import torchvision.transforms.functional as TF
    from torchvision.transforms import InterpolationMode
    img = TF.resize(img, size, interpolation=InterpolationMode.BICUBIC)
    return TF.center_crop(img, [size, size])


def _pil_to_tensor255(img, channels):
    arr = np.asarray(img, dtype=np.float32)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.shape[2] != channels:
        if arr.shape[2] == 1:
            arr = np.repeat(arr, channels, axis=2)
        elif channels == 1:
            arr = arr[:, :, :3].mean(axis=2, keepdims=True)
        else:
            arr = arr[:, :, :channels]
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


def erf_images(source='digits', num_images=8, size=224, channels=3, seed=0):
    """``(N, channels, size, size)`` float images in [0, 255] for ERF maps.

    ``source``: an image folder (``num_images`` files spread over its sorted list, resized and
    centre-cropped), ``'digits'`` (sklearn digits upscaled bicubically) or ``'noise'`` (smoothed
    Gaussian noise from ``seed``).
    """
    from PIL import Image
    if source == 'noise':
        g = torch.Generator().manual_seed(seed)
        low = torch.rand(num_images, channels, max(size // 8, 1), max(size // 8, 1), generator=g)
        return nn.functional.interpolate(low, size=(size, size), mode='bilinear',
                                         align_corners=False) * 255
    if source == 'digits':
        arrays, _ = digits_arrays()
        idx = evenly_spaced(len(arrays), num_images)
        imgs = [Image.fromarray(arrays[i]).resize((size, size), Image.BICUBIC) for i in idx]
    else:
        files = list_images(source)
        idx = evenly_spaced(len(files), num_images)
        imgs = [resize_centre_crop(Image.open(files[i]).convert('RGB'), size) for i in idx]
    return torch.stack([_pil_to_tensor255(im, channels) for im in imgs])


# --------------------------------------------------------------------------------------------
# Runner
# --------------------------------------------------------------------------------------------
def model_erf(loaded, images, batch_size=4, relu=True, progress=False):
    """ERF maps of every stage the backbone of ``loaded`` returns, for images in [0, 255]."""
    backbone = loaded.backbone
    device = next(backbone.parameters()).device
    x = loaded.normalise(images.to(device))
    batches = [x[i:i + batch_size] for i in range(0, len(x), batch_size)]
    return erf_maps(backbone, batches, relu=relu, progress=progress)


def stage_indices(loaded, num_maps):
    idx = getattr(loaded.backbone, 'out_indices', None)
    if idx is None or len(idx) != num_maps:
        idx = tuple(range(num_maps))
    return [int(i) for i in idx]


def summarise(maps, indices, fractions=(0.2, 0.3, 0.5, 0.99)):
    """Per stage: ERF@p of the raw map and of its log-scaled display (``log_map``, shifted to be
    non-negative, as RepLKNet's figures), and the share of pixels at >= 1e-3 of the maximum
    (the coloured area of the heat maps)."""
    out = {}
    for i, m in zip(indices, maps):
        logm = log_scaled(m)
        logm = logm - logm.min()
        entry = {'shape': list(m.shape),
                 'area_above_1e-3_of_max': (float((m >= 1e-3 * m.max()).mean())
                                            if m.max() > 0 else 0.0)}
        entry.update({f'erf@{int(round(p * 100))}': erf_ratio(m, p) for p in fractions})
        entry.update({f'erf@{int(round(p * 100))}_log_map': erf_ratio(logm, p)
                      for p in fractions})
        out[str(i)] = entry
    return out


def progress_bar(total, desc=None):
    """A bar with ``update()`` and ``close()``: tqdm when installed, else MMEngine's."""
    try:
        from tqdm import tqdm
        return tqdm(total=total, leave=False, desc=desc, dynamic_ncols=True)
    except ImportError:
        from mmengine.utils import ProgressBar

        class _Bar:
            def __init__(self):
                self.bar = ProgressBar(total)

            def update(self, n=1):
                for _ in range(n):
                    self.bar.update()

            def close(self):
                pass

        return _Bar()
