"""Translation, rotation and scale invariance (paper section 6, Fig. 7).

Classification (the authors' protocol, with the sizes as
parameters so it also runs on 32x32 digits): every image gives one **standard view** (shorter
side resized to ``resize`` = ``int(img_size / crop_ratio)``, bicubic; centre crop ``img_size``)
and one view per setting:

* ``translation`` by ``s`` pixels: the crop centre moves from the image centre by ``s`` in one of
  7 directions (+row, +col, -row, -col, (+row, +col), (-row, +col), (-row, -col); the authors'
  8th, (+row, -col), is unreachable in their code), drawn per image and setting from a seeded
  generator; the crop is clipped to the resized image and zero-padded symmetrically back to
  ``img_size`` (black before normalisation). ``translation_mode='circular'`` instead rolls the
  standard view by the shift (wrap-around; exact for circularly shift-invariant models).
* ``rotation`` by ``a`` degrees: torchvision's rotate on the PIL image, bicubic, counter-
  clockwise, around the centre, no expansion, black fill; ``rotation_mode='pre'`` rotates the
  resized image and then crops, ``'post'`` crops and then rotates.

Per setting: **consistency** (fraction of images whose top-1 class equals the top-1 class of
their standard view: the paper's invariance metric), top-1/top-5 accuracy against the labels
(when known) and the soft-target cross entropy to the standard view's softmax.

Detection (scale): each image is run with the test pipeline's ``Resize`` scale multiplied by
``f`` (0.25 ... 3.0); mmdet maps the boxes back to the original image (``rescale=True``). The
predictions at ``f = 1`` with score >= ``gt_score_thr`` are the ground truth; the box mAP
(COCO AP@[.5:.95], pycocotools) of all predictions at ``f`` against them is the metric.

Over training (Fig. 7c): a model given as several checkpoints of one run (a work dir or a glob,
:func:`expand_checkpoints`) is evaluated at each of them; :func:`training_curves` averages the
consistency (box mAP for scale) over the magnitudes other than the identity, per checkpoint.

Several processes: launched with ``torchrun`` (``WORLD_SIZE`` > 1) the images are sharded over
the ranks (``rank::world_size``), every rank runs its share and the per-image records are
gathered with ``torch.distributed.all_gather_object`` before the metrics are computed.
"""
import contextlib
import copy
import csv
import glob
import io
import json
import os
import os.path as osp
import re

import numpy as np
import torch

from .erf import evenly_spaced, list_images, progress_bar
from .loaded_model import load_model, parse_model_spec, unique_label

# (d_row, d_col) of the authors' 7 reachable translation directions.
DIRECTIONS = ((1, 0), (0, 1), (-1, 0), (0, -1), (1, 1), (-1, 1), (-1, -1))
PAPER_TRANSLATIONS = tuple(range(0, 65, 4))  # pixels at img_size 224
PAPER_ROTATIONS = tuple(range(0, 46, 5))  # degrees
PAPER_SCALES = tuple(0.25 * i for i in range(1, 13))  # 0.25 ... 3.0
# the metric averaged over magnitudes for invariance over training, and the identity magnitude
# left out of that mean
MEAN_METRIC = dict(translation='consistency', rotation='consistency', scale='bbox_mAP')
IDENTITY = dict(translation=0.0, rotation=0.0, scale=1.0)


def default_translations(img_size, max_shift=None, step=None):
    """The paper's 0..64 px in steps of 4 at 224 px, scaled to ``img_size`` (integer pixels,
    step at least 1)."""
    if max_shift is None:
        max_shift = int(round(64 * img_size / 224))
    if step is None:
        step = max(1, int(round(4 * img_size / 224)))
    return list(range(0, max_shift + 1, step))


# --------------------------------------------------------------------------------------------
# Views
# --------------------------------------------------------------------------------------------
def centre_box(height, width, size):
    """Top-left corner of torchvision's centre crop of ``size`` in a ``height x width`` image."""
    return int(round((height - size) / 2.0)), int(round((width - size) / 2.0))


def shifted_crop(image, size, d_row, d_col):
    """Crop ``size x size`` from ``image`` ``(C, H, W)`` with its centre moved by ``(d_row,
    d_col)`` from the centre crop's; the part outside the image is dropped and the crop is
    zero-padded symmetrically back to ``size`` (top/left get the smaller half)."""
    _, h, w = image.shape
    top, left = centre_box(h, w, size)
    top, left = top + d_row, left + d_col
    r0, r1 = max(top, 0), min(top + size, h)
    c0, c1 = max(left, 0), min(left + size, w)
    out = image.new_zeros(image.shape[0], size, size)
    rh, rw = max(r1 - r0, 0), max(c1 - c0, 0)
    if rh and rw:
        pt, pl = (size - rh) // 2, (size - rw) // 2
        out[:, pt:pt + rh, pl:pl + rw] = image[:, r0:r1, c0:c1]
    return out


class ViewMaker:
    """The standard and transformed views of a PIL image, as ``(C, img_size, img_size)`` float
    tensors in [0, 1] (un-normalised; black = 0)."""

    def __init__(self, img_size=224, resize=None, crop_ratio=0.875, translation_mode='crop',
                 rotation_mode='pre', seed=0):
        if translation_mode not in ('crop', 'circular'):
            raise ValueError(f"translation_mode must be 'crop' or 'circular', got "
                             f'{translation_mode!r}')
        if rotation_mode not in ('pre', 'post'):
            raise ValueError(f"rotation_mode must be 'pre' or 'post', got {rotation_mode!r}")
        self.img_size = int(img_size)
        self.resize = int(resize) if resize else int(img_size / crop_ratio)
        if self.resize < self.img_size:
            raise ValueError(f'resize ({self.resize}) must be at least img_size '
                             f'({self.img_size})')
        self.translation_mode = translation_mode
        self.rotation_mode = rotation_mode
        self.seed = seed

    def _resized(self, img):
        import torchvision.transforms.functional as TF
        from torchvision.transforms import InterpolationMode
        return TF.resize(img, self.resize, interpolation=InterpolationMode.BICUBIC)

    @staticmethod
    def _tensor(img):
        import torchvision.transforms.functional as TF
        return TF.to_tensor(img)

    def _crop(self, tensor):
        return shifted_crop(tensor, self.img_size, 0, 0)

    def standard(self, img):
        return self._crop(self._tensor(self._resized(img)))

    def direction(self, index, shift):
        """The direction drawn for image ``index`` at ``shift`` (seeded, rank-independent)."""
        rng = np.random.default_rng((int(self.seed), int(index), int(shift)))
        return DIRECTIONS[int(rng.integers(len(DIRECTIONS)))]

    def translated(self, img, shift, index):
        d_row, d_col = self.direction(index, shift)
        d_row, d_col = d_row * int(shift), d_col * int(shift)
        if self.translation_mode == 'circular':
            return torch.roll(self.standard(img), shifts=(-d_row, -d_col), dims=(1, 2))
        return shifted_crop(self._tensor(self._resized(img)), self.img_size, d_row, d_col)

    def rotated(self, img, angle):
        import torchvision.transforms.functional as TF
        from torchvision.transforms import InterpolationMode

        def rotate(im):
            if angle == 0:
                return im
            return TF.rotate(im, float(angle), interpolation=InterpolationMode.BICUBIC,
                             expand=False, fill=0)

        if self.rotation_mode == 'pre':
            return self._crop(self._tensor(rotate(self._resized(img))))
        return self._crop(self._tensor(rotate(self._crop_pil(self._resized(img)))))

    def _crop_pil(self, img):
        import torchvision.transforms.functional as TF
        return TF.center_crop(img, [self.img_size, self.img_size])

    def view(self, transform, img, magnitude, index):
        if transform == 'translation':
            return self.translated(img, magnitude, index)
        if transform == 'rotation':
            return self.rotated(img, magnitude)
        raise KeyError(f'unknown classification transform {transform!r}; valid: translation, '
                       'rotation')


# --------------------------------------------------------------------------------------------
# Samples
# --------------------------------------------------------------------------------------------
class ImageSamples:
    """``(PIL RGB image, label)`` pairs: from an ImageNet-style folder (class sub-folders in
    sorted order = labels), an mmpretrain list file (``relative/path label`` per line), or an
    unlabelled folder (label -1)."""

    def __init__(self, root, ann_file=None, num_images=None):
        items = []
        if ann_file:
            with open(ann_file) as f:
                for line in f:
                    parts = line.strip().rsplit(' ', 1)
                    if len(parts) == 2 and parts[0]:
                        items.append((osp.join(root, parts[0]), int(parts[1])))
        else:
            classes = sorted(d for d in os.listdir(root) if osp.isdir(osp.join(root, d)))
            if classes:
                for label, cls in enumerate(classes):
                    items.extend((p, label) for p in list_images(osp.join(root, cls)))
            else:
                items = [(p, -1) for p in list_images(root)]
        if not items:
            raise FileNotFoundError(f'no images found in {root!r}')
        self.items = [items[i] for i in evenly_spaced(len(items), num_images)]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        from PIL import Image
        path, label = self.items[i]
        with Image.open(path) as im:
            return im.convert('RGB'), label


class DigitSamples:
    """The held-out split of sklearn's digits exactly as the digits demo stores it (stratified
    80/20, ``random_state=0``; 8x8 scans scaled to 0..255 and upsampled bicubically to ``size``,
    RGB): 360 images."""

    def __init__(self, size=32, num_images=None, split='val', seed=0, val_fraction=0.2):
        from sklearn.model_selection import train_test_split

        from .erf import digits_arrays
        arrays, labels = digits_arrays()
        train, val = train_test_split(np.arange(len(labels)), test_size=val_fraction,
                                      stratify=labels, random_state=seed)
        idx = np.sort(val if split == 'val' else train)
        idx = [idx[i] for i in evenly_spaced(len(idx), num_images)]
        self.arrays, self.labels, self.size = arrays[idx], labels[idx], size

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        from PIL import Image
        img = Image.fromarray(self.arrays[i])
        if self.size != img.width:
            img = img.resize((self.size, self.size), Image.BICUBIC)
        return img.convert('RGB'), int(self.labels[i])


# --------------------------------------------------------------------------------------------
# Distributed helpers (torchrun)
# --------------------------------------------------------------------------------------------
def init_distributed():
    """Initialise ``torch.distributed`` from torchrun's environment when ``WORLD_SIZE`` > 1
    (NCCL with CUDA, else gloo). Returns ``(rank, world_size)``; ``(0, 1)`` when not launched
    that way."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    world = int(os.environ.get('WORLD_SIZE', '1'))
    if world <= 1 or not dist.is_available():
        return 0, 1
    backend = 'nccl' if torch.cuda.is_available() else 'gloo'
    if backend == 'nccl':
        torch.cuda.set_device(int(os.environ.get('LOCAL_RANK', '0')))
    dist.init_process_group(backend)
    return dist.get_rank(), dist.get_world_size()


def gather_records(records, world_size):
    """All ranks' record lists, concatenated (every rank gets all of them)."""
    if world_size <= 1:
        return records
    import torch.distributed as dist
    parts = [None] * world_size
    dist.all_gather_object(parts, records)
    return [r for part in parts for r in part]


def shard(n, rank, world_size):
    return list(range(rank, n, world_size))


# --------------------------------------------------------------------------------------------
# Classification
# --------------------------------------------------------------------------------------------
def classification_records(predict, samples, transforms, views, batch_size=32, rank=0,
                           world_size=1, progress=False):
    """Per-image predictions of the standard view and of every ``(transform, magnitude)``.

    Args:
        predict: ``(B, C, H, W)`` views in [0, 1] -> logits ``(B, K)`` (normalise inside).
        samples: sequence of ``(PIL image, label)`` (label -1 if unknown).
        transforms: ``{'translation': [pixels...], 'rotation': [degrees...]}``.
        views: a :class:`ViewMaker`.

    Returns:
        list of dicts ``{index, label, top1, top5, logits-free stats per setting}``: for every
        setting key ``'<transform>/<magnitude>'``: ``(top1, label in top5, soft CE)``.
    """
    indices = shard(len(samples), rank, world_size)
    settings = [(t, m) for t, mags in transforms.items() for m in mags]
    bar = progress_bar(len(indices), 'invariance') if progress and rank == 0 else None
    records = []
    for start in range(0, len(indices), batch_size):
        chunk = indices[start:start + batch_size]
        items = [samples[i] for i in chunk]
        labels = [int(lab) for _, lab in items]
        with torch.no_grad():
            ref = predict(torch.stack([views.standard(img) for img, _ in items])).float().cpu()
            ref_top1 = ref.argmax(1)
            ref_prob = ref.softmax(1)
            k = min(5, ref.shape[1])
            ref_top5 = ref.topk(k, 1).indices.tolist()
            batch = [dict(index=i, label=lab, top1=int(p), top5=bool(lab >= 0
                                                                       and lab in ref_top5[j]),
                          settings={})
                     for j, (i, lab, p) in enumerate(zip(chunk, labels, ref_top1))]
            for t, m in settings:
                x = torch.stack([views.view(t, img, m, i) for i, (img, _) in zip(chunk, items)])
                out = predict(x).float().cpu()
                top1 = out.argmax(1)
                top5 = out.topk(k, 1).indices
                ce = -(ref_prob * out.log_softmax(1)).sum(1)
                for j, rec in enumerate(batch):
                    lab = rec['label']
                    rec['settings'][f'{t}/{m}'] = (int(top1[j]), bool(
                        lab >= 0 and lab in top5[j].tolist()), float(ce[j]))
        records.extend(batch)
        if bar is not None:
            bar.update(len(chunk))
    if bar is not None:
        bar.close()
    return records


def classification_metrics(records, transforms):
    """``{transform: {magnitude, consistency, accuracy, accuracy_top5, soft_ce}}`` and the
    standard view's accuracy, from (gathered) records."""
    by_index = {r['index']: r for r in records}  # drop duplicates, if any
    recs = [by_index[i] for i in sorted(by_index)]
    n = len(recs)
    labelled = [r for r in recs if r['label'] >= 0]
    out = dict(num_images=n,
               standard_accuracy=(float(np.mean([r['top1'] == r['label'] for r in labelled]))
                                  if labelled else None),
               standard_accuracy_top5=(float(np.mean([r['top5'] for r in labelled]))
                                       if labelled else None))
    for t, mags in transforms.items():
        res = dict(magnitude=list(mags), consistency=[], accuracy=[], accuracy_top5=[],
                   soft_ce=[])
        for m in mags:
            key = f'{t}/{m}'
            res['consistency'].append(float(np.mean([r['settings'][key][0] == r['top1']
                                                     for r in recs])) if n else None)
            res['accuracy'].append(float(np.mean([r['settings'][key][0] == r['label']
                                                  for r in labelled])) if labelled else None)
            res['accuracy_top5'].append(float(np.mean([r['settings'][key][1] for r in labelled]))
                                        if labelled else None)
            res['soft_ce'].append(float(np.mean([r['settings'][key][2] for r in recs]))
                                  if n else None)
        out[t] = res
    return out


def classification_invariance(predict, samples, transforms, views, batch_size=32, rank=0,
                              world_size=1, progress=False):
    """:func:`classification_records` on this rank's shard, gathered, then
    :func:`classification_metrics`."""
    records = classification_records(predict, samples, transforms, views, batch_size, rank,
                                     world_size, progress)
    return classification_metrics(gather_records(records, world_size), transforms)


def classifier_predict(loaded):
    """``views in [0, 1] -> logits`` for a loaded mmpretrain classifier (or plain module)."""
    model = loaded.model
    device = next(model.parameters()).device

    def predict(x):
        x = loaded.normalise(x.to(device) * 255.0)
        if loaded.kind == 'cls':
            return model(x, mode='tensor')
        return model(x)

    return predict


def image_size_from_config(cfg, default=224):
    """The test crop of a classification config (``CenterCrop``/``ResizeEdge``/``Resize``)."""
    try:
        pipeline = cfg.test_dataloader.dataset.pipeline
    except AttributeError:
        return default
    for step in pipeline:
        t = str(step.get('type', ''))
        if t.endswith('CenterCrop') and step.get('crop_size'):
            size = step['crop_size']
            return int(size if isinstance(size, int) else size[0])
    for step in pipeline:
        t = str(step.get('type', ''))
        if t.endswith(('ResizeEdge', 'Resize')) and step.get('scale'):
            size = step['scale']
            return int(size if isinstance(size, int) else size[0])
    return default


# --------------------------------------------------------------------------------------------
# Detection (scale)
# --------------------------------------------------------------------------------------------
def box_map(ground_truth, detections):
    """COCO box AP of ``detections`` against ``ground_truth`` (pycocotools).

    Both are lists (one entry per image) of dicts with ``bboxes`` ``(K, 4)`` xyxy, ``labels``
    ``(K,)`` and, for detections, ``scores``. Returns ``{bbox_mAP, bbox_mAP_50, bbox_mAP_75,
    num_gt}``; the APs are None when there is no ground-truth box.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    if len(ground_truth) != len(detections):
        raise ValueError('ground_truth and detections need one entry per image')
    images, anns, dets, cats = [], [], [], set()
    for img_id, (gt, dt) in enumerate(zip(ground_truth, detections)):
        images.append(dict(id=img_id, width=1, height=1))
        for box, label in zip(np.asarray(gt['bboxes']).reshape(-1, 4), gt['labels']):
            w, h = float(box[2] - box[0]), float(box[3] - box[1])
            anns.append(dict(id=len(anns) + 1, image_id=img_id, category_id=int(label),
                             bbox=[float(box[0]), float(box[1]), w, h], area=w * h,
                             iscrowd=0))
            cats.add(int(label))
        for box, label, score in zip(np.asarray(dt['bboxes']).reshape(-1, 4), dt['labels'],
                                     dt['scores']):
            dets.append(dict(image_id=img_id, category_id=int(label), score=float(score),
                             bbox=[float(box[0]), float(box[1]), float(box[2] - box[0]),
                                   float(box[3] - box[1])]))
            cats.add(int(label))
    if not anns:
        return dict(bbox_mAP=None, bbox_mAP_50=None, bbox_mAP_75=None, num_gt=0)
    if not dets:
        return dict(bbox_mAP=0.0, bbox_mAP_50=0.0, bbox_mAP_75=0.0, num_gt=len(anns))
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = dict(images=images, annotations=anns,
                               categories=[dict(id=c, name=str(c)) for c in sorted(cats)])
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(dets)
        ev = COCOeval(coco_gt, coco_dt, 'bbox')
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    stats = [max(float(s), 0.0) for s in ev.stats[:3]]
    return dict(bbox_mAP=stats[0], bbox_mAP_50=stats[1], bbox_mAP_75=stats[2], num_gt=len(anns))


def _as_prediction(p):
    return dict(bboxes=np.asarray(p['bboxes'], dtype=np.float64).reshape(-1, 4),
                labels=np.asarray(p['labels'], dtype=np.int64).reshape(-1),
                scores=np.asarray(p['scores'], dtype=np.float64).reshape(-1))


def scale_records(predict, images, factors, batch_size=1, rank=0, world_size=1,
                  progress=False):
    """This rank's predictions: ``[{index, '1.0': pred, '<f>': pred, ...}]``.

    ``predict(items, factor)`` -> one dict per item with ``bboxes`` (xyxy in the original
    image's coordinates), ``scores`` and ``labels``."""
    factors = sorted(set([1.0] + [float(f) for f in factors]))
    indices = shard(len(images), rank, world_size)
    bar = progress_bar(len(indices) * len(factors), 'scale') if progress and rank == 0 else None
    records = [dict(index=i) for i in indices]
    for f in factors:
        for start in range(0, len(indices), batch_size):
            chunk = indices[start:start + batch_size]
            with torch.no_grad():
                preds = predict([images[i] for i in chunk], f)
            for j, p in enumerate(preds):
                records[start + j][repr(f)] = _as_prediction(p)
            if bar is not None:
                bar.update(len(chunk))
    if bar is not None:
        bar.close()
    return records


def scale_metrics(records, factors, gt_score_thr=0.3):
    by_index = {r['index']: r for r in records}
    recs = [by_index[i] for i in sorted(by_index)]
    gts = []
    for r in recs:
        ref = r[repr(1.0)]
        keep = ref['scores'] >= gt_score_thr
        gts.append(dict(bboxes=ref['bboxes'][keep], labels=ref['labels'][keep]))
    res = dict(magnitude=[float(f) for f in factors], bbox_mAP=[], bbox_mAP_50=[],
               bbox_mAP_75=[], num_detections=[])
    for f in factors:
        dts = [r[repr(float(f))] for r in recs]
        m = box_map(gts, dts)
        for key in ('bbox_mAP', 'bbox_mAP_50', 'bbox_mAP_75'):
            res[key].append(m[key])
        res['num_detections'].append(int(sum(len(d['scores']) for d in dts)))
    res['num_gt'] = int(sum(len(g['labels']) for g in gts))
    return dict(num_images=len(recs), gt_score_thr=gt_score_thr, scale=res)


def scale_invariance(predict, images, factors, gt_score_thr=0.3, batch_size=1, rank=0,
                     world_size=1, progress=False):
    """Box mAP of the predictions at every scale factor against those at 1.0 (see module
    docstring); ``predict`` as in :func:`scale_records`."""
    records = scale_records(predict, images, factors, batch_size, rank, world_size, progress)
    return scale_metrics(gather_records(records, world_size), factors, gt_score_thr)


def scaled_test_pipeline(pipeline, factor):
    """The test pipeline with its ``Resize`` scale (or scale factor) multiplied by ``factor``
    and annotation loading removed; a ``Resize(scale_factor=factor)`` is inserted after image
    loading when there is no resize."""
    steps = [copy.deepcopy(dict(s)) for s in pipeline
             if not str(s.get('type', '')).endswith('LoadAnnotations')]
    found = False
    for s in steps:
        t = str(s.get('type', ''))
        if t.split('.')[-1] in ('Resize', 'FixScaleResize'):
            found = True
            if s.get('scale') is not None:
                scale = s['scale']
                scale = (scale, scale) if isinstance(scale, (int, float)) else scale
                s['scale'] = tuple(max(1, int(round(v * factor))) for v in scale)
            else:
                sf = s.get('scale_factor', 1.0)
                s['scale_factor'] = (tuple(v * factor for v in sf)
                                     if isinstance(sf, (tuple, list)) else sf * factor)
    if not found:
        at = next((k + 1 for k, s in enumerate(steps)
                   if 'LoadImage' in str(s.get('type', ''))), 0)
        steps.insert(at, dict(type='Resize', scale_factor=factor, keep_ratio=True))
    return steps


class MMDetScalePredictor:
    """``predict(image_paths, factor)`` for a loaded mmdet detector (see
    :func:`scaled_test_pipeline`); boxes come back in original-image coordinates. The
    transforms are built from mmdet's registry directly, so MMEngine's default scope is left
    as it was."""

    def __init__(self, loaded):
        from mmdet.utils import register_all_modules
        register_all_modules(init_default_scope=False)
        self.loaded = loaded
        cfg = loaded.cfg
        pipeline = cfg.get('test_pipeline') or cfg.test_dataloader.dataset.pipeline
        self.pipeline = [dict(s) for s in pipeline]
        self._cache = {}

    def _transforms(self, factor):
        if factor not in self._cache:
            from mmdet.registry import TRANSFORMS
            from mmengine.registry import DefaultScope

            # an earlier mmpretrain run may have left 'mmpretrain' as the default scope, which
            # would send unscoped names like PackDetInputs to mmpretrain's registry
            with DefaultScope.overwrite_default_scope('mmdet'):
                self._cache[factor] = [TRANSFORMS.build(s)
                                       for s in scaled_test_pipeline(self.pipeline, factor)]
        return self._cache[factor]

    def _prepare(self, path, index, factor):
        data = dict(img_path=path, img_id=index)
        for t in self._transforms(factor):
            data = t(data)
            if data is None:
                raise RuntimeError(f'the test pipeline dropped {path!r}')
        return data

    def __call__(self, paths, factor):
        from mmengine.dataset import pseudo_collate
        data = pseudo_collate([self._prepare(p, k, factor) for k, p in enumerate(paths)])
        samples = self.loaded.model.test_step(data)
        out = []
        for s in samples:
            inst = s.pred_instances
            out.append(dict(bboxes=inst.bboxes.detach().cpu().numpy(),
                            scores=inst.scores.detach().cpu().numpy(),
                            labels=inst.labels.detach().cpu().numpy()))
        return out


def detection_images(cfg, data=None, num_images=None, img_dir=None):
    """Image paths: ``data`` (a folder, searched recursively, or a COCO json) or the config's
    test set (COCO json). A json's images are looked up in ``img_dir``, else next to it, else in
    ``<json dir>/../<split>`` (``instances_val2017.json`` -> ``val2017``)."""
    if data and osp.isdir(data):
        files = list_images(data)
    else:
        if data:
            ann_file = data
            split = osp.splitext(osp.basename(data))[0].split('instances_')[-1]
            candidates = [osp.dirname(data), osp.join(osp.dirname(osp.dirname(data)), split)]
        else:
            ds = cfg.test_dataloader.dataset
            root = ds.get('data_root', '') or ''
            ann_file = osp.join(root, ds.ann_file)
            candidates = [osp.join(root, (ds.get('data_prefix') or {}).get('img', ''))]
        if not osp.isfile(ann_file):
            raise FileNotFoundError(
                f'annotation file {ann_file!r} not found; generate the dataset or pass --data '
                'with an image folder or a COCO json')
        with open(ann_file) as f:
            coco = json.load(f)
        names = [im['file_name'] for im in sorted(coco['images'], key=lambda im: im['id'])]
        if img_dir:
            candidates = [img_dir]
        found = next((d for d in candidates if names and osp.isfile(osp.join(d, names[0]))),
                     None)
        if names and found is None:
            raise FileNotFoundError(f'images of {ann_file!r} (e.g. {names[0]!r}) not found in '
                                    f'{candidates}; pass --img-dir')
        files = [osp.join(found, n) for n in names]
    return [files[i] for i in evenly_spaced(len(files), num_images)]


# --------------------------------------------------------------------------------------------
# Runner and output
# --------------------------------------------------------------------------------------------
def write_outputs(result, out_dir, stem, plot=True, accuracy_plot=False):
    """``<stem>.json`` (all), ``<stem>.csv`` (one row per model, transform and magnitude) and
    ``<stem>.png`` (curves, paper Fig. 7 layout)."""
    os.makedirs(out_dir, exist_ok=True)
    with open(osp.join(out_dir, f'{stem}.json'), 'w') as f:
        json.dump(result, f, indent=2)
    metrics = ('consistency', 'accuracy', 'accuracy_top5', 'soft_ce', 'bbox_mAP', 'bbox_mAP_50',
               'bbox_mAP_75', 'num_detections')
    with open(osp.join(out_dir, f'{stem}.csv'), 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['model', 'transform', 'magnitude', 'num_images', *metrics])
        for label, res in result['models'].items():
            for t in ('translation', 'rotation', 'scale'):
                if t not in res:
                    continue
                for k, m in enumerate(res[t]['magnitude']):
                    row = [res[t][key][k] if key in res[t] else '' for key in metrics]
                    writer.writerow([label, t, m, res['num_images'],
                                     *['' if v is None else v for v in row]])
    if plot:
        from .plotting import plot_invariance
        plot_invariance(result['models'], osp.join(out_dir, f'{stem}.png'),
                        accuracy=accuracy_plot)


def checkpoint_step(path):
    """``('epoch', 12)`` for ``.../epoch_12.pth``, ``('iter', 400)`` for ``iter_400.pth``,
    else ``(None, None)``."""
    m = re.search(r'(epoch|iter)_(\d+)\.pth$', osp.basename(str(path)))
    return (m.group(1), int(m.group(2))) if m else (None, None)


def expand_checkpoints(checkpoint):
    """The checkpoints of one run: a work dir gives its ``epoch_*.pth`` / ``iter_*.pth``, a glob
    pattern its matches, sorted by epoch or iteration; a file or ``none`` gives itself."""
    if checkpoint in (None, '', 'none', 'None'):
        return [checkpoint]
    if osp.isdir(checkpoint):
        files = [p for p in glob.glob(osp.join(checkpoint, '*.pth'))
                 if checkpoint_step(p)[0] is not None]
        if not files:
            raise FileNotFoundError(f'no epoch_*.pth or iter_*.pth in {checkpoint!r}; pass a '
                                    'checkpoint file or a glob such as "DIR/epoch_*.pth"')
    elif glob.has_magic(checkpoint):
        files = glob.glob(checkpoint)
        if not files:
            raise FileNotFoundError(f'no checkpoint matches {checkpoint!r}; check the pattern')
    else:
        return [checkpoint]
    return sorted(files, key=lambda p: (checkpoint_step(p)[1] is None,
                                        checkpoint_step(p)[1] or 0, p))


def evaluate_runs(models, evaluate, rank=0, log=print):
    """Run ``evaluate(config, checkpoint, label) -> (label, result)`` on every checkpoint of
    every model (see :func:`expand_checkpoints`).

    Returns:
        ``(final, training)``: ``{label: result of the last checkpoint}`` and, for the models
        with several checkpoints, ``{label: [(checkpoint, result), ...]}``.
    """
    final, training, taken = {}, {}, set()
    for config, checkpoint, label in models:
        checkpoints = expand_checkpoints(checkpoint)
        results = []
        for k, ckpt in enumerate(checkpoints):
            if len(checkpoints) > 1 and rank == 0:
                log(f'[invariance] checkpoint {k + 1}/{len(checkpoints)}: {ckpt}')
            name, res = evaluate(config, ckpt, label)
            results.append((ckpt, res))
        name = unique_label(name, taken)
        final[name] = results[-1][1]
        if len(results) > 1:
            training[name] = results
    return final, training


def training_curves(training):
    """Per run and checkpoint the mean consistency of every classification transform (box mAP
    for scale) over its magnitudes, leaving out the identity (shift 0, angle 0, scale 1), which
    scores 1 by construction: ``{label: {checkpoints, step, step_name, mean: {transform:
    [...]}}}``."""
    curves = {}
    for label, results in training.items():
        steps = [checkpoint_step(ckpt) for ckpt, _ in results]
        names = {name for name, _ in steps}
        numbered = len(names) == 1 and None not in names
        curve = dict(checkpoints=[ckpt for ckpt, _ in results],
                     step=[n for _, n in steps] if numbered else list(range(1, len(steps) + 1)),
                     step_name=names.pop() if numbered else 'checkpoint', mean={})
        for t, metric in MEAN_METRIC.items():
            if t not in results[0][1]:
                continue
            means = []
            for _, res in results:
                values = [v for m, v in zip(res[t]['magnitude'], res[t][metric])
                          if v is not None and float(m) != IDENTITY[t]]
                means.append(float(np.mean(values)) if values else None)
            curve['mean'][t] = means
        curves[label] = curve
    return curves


def write_training_outputs(training, settings, out_dir, stem):
    """``<stem>.json`` (the curves, settings and every checkpoint's full result), ``<stem>.csv``
    (one row per run, checkpoint and transform) and ``<stem>.png`` (a row per run)."""
    from .plotting import plot_training_invariance
    curves = training_curves(training)
    os.makedirs(out_dir, exist_ok=True)
    models = {label: dict(c, results=[res for _, res in training[label]])
              for label, c in curves.items()}
    with open(osp.join(out_dir, f'{stem}.json'), 'w') as f:
        json.dump(dict(settings=settings, models=models), f, indent=2)
    with open(osp.join(out_dir, f'{stem}.csv'), 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['model', 'checkpoint', 'step_name', 'step', 'transform', 'metric',
                         'mean'])
        for label, c in curves.items():
            for t, means in c['mean'].items():
                for ckpt, step, v in zip(c['checkpoints'], c['step'], means):
                    writer.writerow([label, ckpt, c['step_name'], step, t, MEAN_METRIC[t],
                                     '' if v is None else v])
    plot_training_invariance(curves, osp.join(out_dir, f'{stem}.png'))
    return curves


def run_classification(models, out_dir, data=None, ann_file=None, num_images=100,
                       img_size=None, resize=None, crop_ratio=0.875, translations=None,
                       rotations=PAPER_ROTATIONS, transforms=('translation', 'rotation'),
                       translation_mode='crop', rotation_mode='pre', batch_size=32,
                       device='cpu', seed=0, progress=True, accuracy_plot=False, log=print):
    """Classification invariance of several models; writes ``invariance_cls.{json,csv,png}``
    (on rank 0; the last checkpoint of each model) and, for models given as several checkpoints
    (:func:`expand_checkpoints`), ``invariance_cls_training.{json,csv,png}``. Returns the
    result dict of the former."""
    rank, world = init_distributed()
    settings = {}

    def evaluate(config, checkpoint, label):
        loaded = load_model(config, checkpoint, device=device, label=label)
        size = img_size or image_size_from_config(loaded.cfg)
        views = ViewMaker(size, resize, crop_ratio, translation_mode, rotation_mode, seed)
        if data in (None, 'digits'):
            samples = DigitSamples(size=size, num_images=num_images)
        else:
            samples = ImageSamples(data, ann_file, num_images)
        todo = {}
        if 'translation' in transforms:
            todo['translation'] = list(translations or default_translations(size))
        if 'rotation' in transforms:
            todo['rotation'] = list(rotations)
        if rank == 0:
            log(f'[invariance] {loaded.label}: {config} '
                f'({loaded.checkpoint or "initialised weights"}), {len(samples)} images, view '
                f'{size} from {views.resize}, ' + ', '.join(f'{t} {v}' for t, v in todo.items()))
        res = classification_invariance(classifier_predict(loaded), samples, todo, views,
                                        batch_size, rank, world, progress)
        res.update(config=config, checkpoint=loaded.checkpoint)
        settings.update(
            data=data or 'digits', num_images=len(samples), img_size=size, resize=views.resize,
            translation_mode=translation_mode, rotation_mode=rotation_mode, seed=seed,
            world_size=world, directions=[list(d) for d in DIRECTIONS])
        if rank == 0:
            for t in todo:
                log(f'[invariance]   {t}: consistency ' + ' '.join(
                    f'{m}:{100 * c:.1f}' for m, c in zip(res[t]['magnitude'],
                                                         res[t]['consistency'])))
        return loaded.label, res

    final, training = evaluate_runs(models, evaluate, rank, log)
    result = dict(mode='cls', settings=settings, models=final)
    if rank == 0:
        write_outputs(result, out_dir, 'invariance_cls', accuracy_plot=accuracy_plot)
        if training:
            write_training_outputs(training, settings, out_dir, 'invariance_cls_training')
            log(f'[invariance] over training: {out_dir}/invariance_cls_training.{{json,csv,png}}')
    return result


def run_detection(models, out_dir, data=None, num_images=20, factors=PAPER_SCALES,
                  gt_score_thr=0.3, batch_size=1, device='cpu', progress=True, img_dir=None,
                  log=print):
    """Detection scale invariance of several models; writes ``invariance_det.{json,csv,png}``
    (on rank 0; the last checkpoint of each model) and, for models given as several checkpoints,
    ``invariance_det_training.{json,csv,png}``. Returns the result dict of the former."""
    rank, world = init_distributed()
    settings = {}

    def evaluate(config, checkpoint, label):
        loaded = load_model(config, checkpoint, device=device, label=label)
        if loaded.kind != 'det':
            raise ValueError(f'{config} is not a detection config (scale mode needs mmdet)')
        images = detection_images(loaded.cfg, data, num_images, img_dir)
        if rank == 0:
            log(f'[invariance] {loaded.label}: {config} '
                f'({loaded.checkpoint or "initialised weights"}), {len(images)} images, scales '
                f'{list(factors)}')
        res = scale_invariance(MMDetScalePredictor(loaded), images, factors, gt_score_thr,
                               batch_size, rank, world, progress)
        res.update(config=config, checkpoint=loaded.checkpoint)
        settings.update(data=data or 'config test set', num_images=len(images),
                        gt_score_thr=gt_score_thr, world_size=world)
        if rank == 0:
            log('[invariance]   scale: box mAP ' + ' '.join(
                f'{m:g}:{"n/a" if v is None else f"{100 * v:.1f}"}'
                for m, v in zip(res['scale']['magnitude'], res['scale']['bbox_mAP']))
                + f' ({res["scale"]["num_gt"]} reference boxes)')
        return loaded.label, res

    final, training = evaluate_runs(models, evaluate, rank, log)
    result = dict(mode='det', settings=settings, models=final)
    if rank == 0:
        write_outputs(result, out_dir, 'invariance_det')
        if training:
            write_training_outputs(training, settings, out_dir, 'invariance_det_training')
            log(f'[invariance] over training: {out_dir}/invariance_det_training.{{json,csv,png}}')
    return result


def merge_results(paths):
    """Merge several written JSON files model by model (for one figure with all panels)."""
    models = {}
    for p in paths:
        with open(p) as f:
            res = json.load(f)
        for label, r in res['models'].items():
            models.setdefault(label, {}).update(r)
    return models


__all__ = [
    'DIRECTIONS', 'PAPER_TRANSLATIONS', 'PAPER_ROTATIONS', 'PAPER_SCALES', 'ViewMaker',
    'shifted_crop', 'centre_box', 'default_translations', 'ImageSamples', 'DigitSamples',
    'classification_records', 'classification_metrics', 'classification_invariance',
    'classifier_predict', 'box_map', 'scale_records', 'scale_metrics', 'scale_invariance',
    'scaled_test_pipeline', 'MMDetScalePredictor', 'detection_images', 'run_classification',
    'run_detection', 'write_outputs', 'merge_results', 'init_distributed', 'gather_records',
    'parse_model_spec', 'checkpoint_step', 'expand_checkpoints', 'evaluate_runs',
    'training_curves', 'write_training_outputs'
]
