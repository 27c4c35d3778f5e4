"""Checks and safeguards applied to a run's configuration before it starts.

* :func:`check_data`: COCO json / image-folder checks (:mod:`stm_mm.datasets.validation`),
  optionally dropping bad annotations (``reliability.skip_invalid``);
* :func:`guard_images`: ``LoadImageFromFile`` becomes :class:`~stm_mm.datasets.image_loading.
  SafeLoadImageFromFile`; with ``skip_invalid`` unreadable samples are replaced and counted;
* :func:`seed_samples`: each training sample is augmented with RNGs seeded from its position;
* :func:`check_input_sizes`: the model runs once on each pipeline's output size;
* :func:`check_pretrained_inits`: ``init_cfg=dict(type='Pretrained')`` files fit their module.

Each takes the :class:`~stm_mm.engine.runner.ReliableRunner` and the splits it checks.
"""
import os
import os.path as osp

import torch
from mmengine.model import is_model_wrapper

from ..datasets.image_loading import SafeLoadImageFromFile
from ..datasets.sample_seeds import SeededSampler, SeededSamples
from ..datasets.unreadable import SkipUnreadable
from ..datasets.validation import iter_datasets, validate_dataset_cfg
from ..errors import CheckpointError, InputSizeError
from ..patches import has_val_loop, pending_cfg
from .loading import KeyMismatch, first_line, is_local, read_checkpoint, weights_of
from .unreadable_images import UnreadableImagesHook, record_file

# the transforms that size a pipeline's output, and the argument that holds the size
_SIZE_KEYS = {
    'RandomResizedCrop': 'scale', 'RandomResizedCropAndInterpolation': 'size',
    'CenterCrop': 'crop_size', 'RandomCrop': 'crop_size', 'Resize': 'scale',
    'ResizeEdge': 'scale', 'FixScaleResize': 'scale', 'RandomChoiceResize': None,
}
_PROBE_SIDES = (32, 48, 64, 96, 128, 160, 192, 224, 256, 320, 384)


def _unwrap(model):
    return model.module if is_model_wrapper(model) else model


def _dataset_cfgs(runner, splits):
    """``(split, loader config)`` of the splits whose loader is still a config with a dataset
    (validation only when the run validates)."""
    for split in splits:
        loader = pending_cfg(runner, split)
        if split == 'val' and not has_val_loop(runner):
            continue
        if isinstance(loader, dict) and isinstance(loader.get('dataset'), dict):
            yield split, loader


def _is_load_image(type_):
    """Whether a pipeline ``type`` is mmcv's ``LoadImageFromFile`` (under any scope)."""
    if isinstance(type_, str):
        return type_.split('.')[-1] == 'LoadImageFromFile'
    return getattr(type_, '__name__', None) == 'LoadImageFromFile'


def check_data(runner, splits):
    """Validate the datasets of ``splits``; point evaluators at cleaned annotation files."""
    for split, loader in _dataset_cfgs(runner, splits):
        replaced = validate_dataset_cfg(
            loader['dataset'], split, skip_invalid=runner.reliability['skip_invalid'],
            work_dir=runner.work_dir, logger=runner.logger)
        if replaced and split != 'train':  # (training has no evaluator)
            _redirect_evaluator(runner, split, replaced)


def _redirect_evaluator(runner, split, replaced):
    evaluator = pending_cfg(runner, split, 'evaluator')
    if isinstance(evaluator, dict) and 'metrics' in evaluator:
        evaluator = evaluator['metrics']
    for item in evaluator if isinstance(evaluator, (list, tuple)) else [evaluator]:
        if isinstance(item, dict) and isinstance(item.get('ann_file'), str):
            new = replaced.get(osp.abspath(item['ann_file']))
            if new:
                item['ann_file'] = new
                runner.logger.warning(f'{split} evaluator reads the cleaned {new}')


def guard_images(runner, splits):
    """Decode images with :class:`SafeLoadImageFromFile` (one-line errors naming the file);
    with ``skip_invalid``, wrap the datasets in :class:`SkipUnreadable` and gather what they
    skip with :class:`UnreadableImagesHook`."""
    options = runner.reliability
    skip = options['skip_invalid']
    for split in splits:
        loader = pending_cfg(runner, split)
        if not isinstance(loader, dict) or not isinstance(loader.get('dataset'), dict):
            continue
        for ds in iter_datasets(loader['dataset']):
            ds['pipeline'] = [
                dict(t, type=SafeLoadImageFromFile, max_pixels=options['max_image_pixels'])
                if isinstance(t, dict) and _is_load_image(t.get('type')) else t
                for t in ds.get('pipeline') or []]
        if skip:
            record = record_file(runner.work_dir, split, runner.rank)
            if not runner.resumes and osp.isfile(record):
                os.remove(record)  # a resumed run keeps counting the skips of its start
            loader['dataset'] = dict(type=SkipUnreadable, dataset=loader['dataset'],
                                     record_file=record, skip_list=options['skip_list'])
    if skip and not any(isinstance(h, UnreadableImagesHook) for h in runner.hooks):
        runner.register_hook(UnreadableImagesHook(options['max_unreadable']))


def seed_samples(runner):
    """Augment each training sample with RNGs seeded from (seed, rank, epoch, position)
    (:mod:`stm_mm.datasets.sample_seeds`): data-loader workers, persistent or not, then
    produce the same batches after a resume as in the uninterrupted run."""
    loader = pending_cfg(runner, 'train')
    if isinstance(loader, dict) and isinstance(loader.get('dataset'), dict) \
            and isinstance(loader.get('sampler'), dict):
        loader['dataset'] = dict(type=SeededSamples, dataset=loader['dataset'])
        loader['sampler'] = dict(type=SeededSampler, sampler=loader['sampler'])


def pipeline_output_size(pipeline):
    """``(H, W)`` of the images a pipeline produces, from its last sizing transform, or None."""
    size = None
    for t in pipeline or []:
        if not isinstance(t, dict):
            continue
        key = _SIZE_KEYS.get(str(t.get('type', '')).split('.')[-1])
        if key is None or t.get(key) is None:
            continue
        value = t[key]
        if isinstance(value, (int, float)):
            size = (int(value), int(value))
        elif isinstance(value, (list, tuple)) and len(value) == 2 and all(
                isinstance(v, (int, float)) for v in value):
            size = (int(value[1]), int(value[0]))  # (w, h) -> (H, W)
    return size


def _probe(fn, in_ch, h, w):
    """The exception ``fn`` raises on a ``(1, in_ch, h, w)`` batch of zeros, or None."""
    try:
        with torch.no_grad():
            fn(torch.zeros(1, in_ch, h, w))
        return None
    except Exception as e:  # noqa: B902 - any failure is the answer
        return e


def check_input_sizes(runner, splits):
    """Raise :class:`InputSizeError` when the model cannot take a pipeline's output size
    (sides up to 384: the failures are small inputs), naming the smallest size that works."""
    model = _unwrap(runner.model)
    probe = getattr(model, 'extract_feat', None) or getattr(model, 'backbone', None)
    if probe is None:
        return
    in_ch = getattr(getattr(model, 'backbone', None), 'in_channels', 3)
    in_ch = in_ch if isinstance(in_ch, int) else 3
    sizes = {}
    for split, loader in _dataset_cfgs(runner, splits):
        for ds in iter_datasets(loader['dataset']):
            size = pipeline_output_size(ds.get('pipeline'))
            if size and max(size) <= _PROBE_SIDES[-1]:
                sizes.setdefault(size, split)
    was_training = model.training
    model.eval()
    try:
        for (h, w), split in sizes.items():
            err = _probe(probe, in_ch, h, w)
            if err is None:
                continue
            fits = next((s for s in _PROBE_SIDES
                         if s >= min(h, w) and _probe(probe, in_ch, s, s) is None), None)
            hint = (f'make the pipeline produce at least {fits}x{fits} images' if fits
                    else 'change the pipeline\'s output size or the model')
            raise InputSizeError(
                f'the model cannot take the {h}x{w} images the {split} pipeline produces '
                f'[{type(err).__name__}: {first_line(err, 160)}]; fix: {hint}')
    finally:
        model.train(was_training)


def check_pretrained_inits(runner):
    """Every local ``init_cfg=dict(type='Pretrained')`` file is readable and fits its module:
    no mis-shaped tensor and some keys in common (``strict_load``), else a warning."""
    for name, module in _unwrap(runner.model).named_modules():
        init_cfg = getattr(module, 'init_cfg', None)
        for cfg in (init_cfg if isinstance(init_cfg, (list, tuple)) else [init_cfg]):
            if isinstance(cfg, dict) and cfg.get('type') == 'Pretrained' and \
                    is_local(cfg.get('checkpoint')):  # URLs, torchvision://: not checked
                _check_pretrained(runner, name or type(module).__name__, module,
                                  cfg['checkpoint'], cfg.get('prefix'))


def _check_pretrained(runner, name, module, path, prefix):
    where = f'init_cfg Pretrained of {name}'
    try:
        sd = weights_of(read_checkpoint(path))
    except CheckpointError as e:
        raise CheckpointError(f'{where}: {e}', e.kind) from None
    if prefix:
        prefix = prefix if prefix.endswith('.') else prefix + '.'
        sd = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
    own = module.state_dict()
    mismatch = KeyMismatch.between(own, sd)
    if runner.reliability['strict_load'] and (mismatch.misshaped or not mismatch.common):
        what = (mismatch.describe(limit=5) if mismatch.misshaped else
                f'no key in common (prefix {prefix!r}; the module has {len(own)} keys)')
        raise CheckpointError(
            f'{where}: {path} does not fit: {what}; fix: use the checkpoint of the matching '
            'model (stm, arch), the right prefix, or set reliability=dict(strict_load=False)',
            'does not fit')
    if not mismatch.fits:
        runner.logger.warning(
            f'{where}: {path} loads {mismatch.common - len(mismatch.misshaped)}/{len(own)} '
            f'tensors; {mismatch.describe(limit=5)}')
