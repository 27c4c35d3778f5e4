"""``ReliableRunner``: MMEngine's Runner made safe against crashes and bad input.

What it changes (``build_runner`` selects it for every config that names no ``runner_type``):

Checkpoints
    * written atomically: temporary file in the same folder, flush + fsync, rename; the
      ``last_checkpoint`` pointer is replaced the same way and old checkpoints are deleted only
      after the new one is complete (:class:`~stm_mm.engine.hooks.ReliableCheckpointHook`
      replaces ``CheckpointHook``);
    * a checkpoint is never written while any weight is NaN/Inf;
    * the RNG states (python, numpy, torch, CUDA) are stored in ``meta['rng_state']`` and
      restored on resume at the point where the uninterrupted run was, so that an interrupted and
      resumed run ends with the same weights (seeded, deterministic runs);
    * each training sample is augmented with RNGs seeded from (seed, rank, epoch, position)
      (:mod:`stm_mm.datasets.sample_seeds`), so data-loader workers, persistent or not, do not
      make a resumed run differ; data loaders' ``iter()`` leaves the global RNG alone;
    * a full disk is named, with the checkpoint that is still intact; older checkpoints that a
      killed run left beyond ``max_keep_ckpts`` are deleted at the next save.
Resume
    * auto-resume (``--resume``) tries the pointer's file first and falls back to the newest
      loadable checkpoint, logging every file it skips (truncated, corrupt, wrong content);
    * a config without a seed resumes with the checkpoint's seed, so data order is unchanged;
    * an unreadable checkpoint is reported as one message naming the file.
Bad input, before training
    * ``load_from`` / resume: the checkpoint must fit the model (missing, unexpected and
      mis-shaped keys listed; opt out with ``reliability=dict(strict_load=False)``);
      ``init_cfg=dict(type='Pretrained')``: readable file, no mis-shaped tensor, some overlap;
    * datasets: COCO json / image-folder checks of :mod:`stm_mm.datasets.validation`, optionally
      dropping bad annotations (``reliability=dict(skip_invalid=True)``, ``--skip-invalid``);
    * input sizes: the model runs once on an empty batch of each pipeline's output size;
Bad images, during the run
    * ``LoadImageFromFile`` becomes :class:`~stm_mm.datasets.image_loading.
      SafeLoadImageFromFile` (content sniffing, truncation check, one-line errors naming the
      file); with ``skip_invalid`` undecodable samples are replaced
      (:class:`~stm_mm.datasets.unreadable.SkipUnreadable`), listed and counted
      (:class:`~stm_mm.engine.unreadable_images.UnreadableImagesHook`);
* a NaN/Inf loss stops training (:class:`~stm_mm.engine.hooks.FiniteLossHook`).

Options: ``reliability = dict(...)`` in the config, keys of :data:`DEFAULT_OPTIONS`.
"""
import copy
import errno
import os
import os.path as osp
import random
import re

import numpy as np
import torch
from mmengine.hooks import CheckpointHook
from mmengine.model import is_model_wrapper
from mmengine.registry import RUNNERS
from mmengine.runner import Runner
from mmengine.runner.checkpoint import _load_checkpoint, _load_checkpoint_to_model

from ..checkpoint_io import CheckpointReadError, check_checkpoint_format
from ..converters import check_state_dict_fits
from .hooks import (FiniteLossHook, NonFiniteLossError, ReliableCheckpointHook,
                    atomic_write, checkpoint_sort_key, last_good_checkpoint)

DEFAULT_OPTIONS = dict(
    strict_load=True,        # load_from / resume: the checkpoint must fit the model exactly
    skip_invalid=False,      # drop invalid annotations (cleaned json in the work dir)
    check_data=True,         # validate datasets before training / testing
    check_input_size=True,   # probe the model with each pipeline's output size
    finite_loss=True,        # inject FiniteLossHook
    save_rng_state=True,     # store and restore RNG states for exact resumes
    max_unreadable=0.01,     # skip_invalid: largest share of undecodable images per split
    skip_list=None,          # skip_invalid: images to skip unread (check_images.py's list)
    max_image_pixels=89_478_485,  # larger images are unreadable (Pillow's limit; None: none)
)


class ReliabilityError(RuntimeError):
    """A problem the user can fix; the message says what and how. ``exit_code`` for CLIs."""

    exit_code = 2


class CheckpointError(ReliabilityError):
    """``kind``: what is wrong with the file, for summaries (``'refused as unsafe'``, ...)."""

    def __init__(self, message, kind='unreadable'):
        super().__init__(message)
        self.kind = kind


def _kind_of(read_error):
    from ..checkpoint_io import NotACheckpointError, UnsafeCheckpointError
    if isinstance(read_error, UnsafeCheckpointError):
        return 'refused as unsafe'
    if isinstance(read_error, NotACheckpointError):
        return 'not a checkpoint'
    if str(read_error).startswith('checkpoint file not found'):
        return 'missing'
    return 'truncated or corrupt'


class InputSizeError(ReliabilityError):
    pass


def reliability_options(cfg):
    """``DEFAULT_OPTIONS`` updated with the config's ``reliability`` dict (unknown keys fail)."""
    opts = dict(DEFAULT_OPTIONS)
    given = (cfg or {}).get('reliability') if cfg is not None else None
    if given:
        unknown = sorted(set(given) - set(DEFAULT_OPTIONS))
        if unknown:
            raise ReliabilityError(f'unknown reliability option(s) {unknown}; valid: '
                                   f'{", ".join(DEFAULT_OPTIONS)}')
        opts.update(given)
    return opts


def is_disk_full(exc):
    """Whether a failed write ran out of space: ``ENOSPC``/``EDQUOT``, or torch's zip writer
    after a short write (``unexpected pos ...``, ``file write failed``)."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc)
    return any(s in text for s in ('No space left', 'unexpected pos', 'file write failed'))


def _first_line(text, limit=300):
    text = str(text).strip().splitlines()[0] if str(text).strip() else ''
    return text if len(text) <= limit else text[:limit] + '...'


def check_checkpoint_file(filename):
    """Raise :class:`CheckpointError` unless ``filename`` (a local path) is a file in a checkpoint
    format (:func:`stm_mm.checkpoint_io.check_checkpoint_format`); URLs pass."""
    if '://' in str(filename):
        return
    try:
        check_checkpoint_format(filename)
    except CheckpointReadError as e:
        raise CheckpointError(str(e), _kind_of(e)) from None


def read_checkpoint(filename, map_location='cpu'):
    """``mmengine``'s ``_load_checkpoint`` with :class:`CheckpointError` for unreadable files.

    Local files and URLs are read by :func:`stm_mm.checkpoint_io.load_checkpoint` (weights only;
    its messages tell forbidden objects, truncated files and non-checkpoints apart)."""
    if '://' not in str(filename) and not osp.isfile(filename):
        raise CheckpointError(f'checkpoint file not found: {filename}; fix: check the path '
                              '(load_from / --resume / init_cfg checkpoint)')
    try:
        return _load_checkpoint(filename, map_location=map_location)
    except CheckpointError:
        raise
    except CheckpointReadError as e:
        raise CheckpointError(str(e), _kind_of(e)) from None
    except Exception as e:  # other MMEngine schemes (s3://, pavi://, ...)
        raise CheckpointError(f'checkpoint {filename} cannot be read [{type(e).__name__}: '
                              f'{_first_line(e, 160)}]; fix: check the path and the file') from e


def state_dict_of(checkpoint, revise_keys=((r'^module.', ''), )):
    """The weights in a checkpoint, keys revised the way ``_load_checkpoint_to_model`` does."""
    sd = checkpoint.get('state_dict', checkpoint) if isinstance(checkpoint, dict) else checkpoint
    sd = {k: v for k, v in sd.items() if k != '_metadata'}
    for pattern, repl in revise_keys:
        sd = {re.sub(pattern, repl, k): v for k, v in sd.items()}
    return sd


def _rng_state():
    py = random.getstate()
    npst = np.random.get_state()
    state = dict(
        python=[py[0], list(py[1]), py[2]],
        numpy=[npst[0], npst[1].tolist(), int(npst[2]), int(npst[3]), float(npst[4])],
        torch=torch.get_rng_state(),
    )
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state):
    py = state['python']
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state['numpy']
    np.random.set_state((n[0], np.asarray(n[1], dtype=np.uint32), n[2], n[3], n[4]))
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        try:
            torch.cuda.set_rng_state_all(state['cuda'])
        except Exception:
            pass


class _RestoreRngAfter:
    """Iterator proxy: after ``n`` items (the batches a resumed IterBasedTrainLoop skips), put
    the RNG back to the state saved with the checkpoint."""

    def __init__(self, iterator, n, state):
        self._iterator, self._left, self._state = iterator, n, state

    def __iter__(self):
        return self

    def __next__(self):
        item = next(self._iterator)
        if self._state is not None:
            self._left -= 1
            if self._left <= 0:
                _set_rng_state(self._state)
                self._state = None
        return item

    def __getattr__(self, name):
        return getattr(self._iterator, name)


def _is_load_image(type_):
    """Whether a pipeline ``type`` is mmcv's ``LoadImageFromFile`` (under any scope)."""
    if isinstance(type_, str):
        return type_.split('.')[-1] == 'LoadImageFromFile'
    return getattr(type_, '__name__', None) == 'LoadImageFromFile'


def _is_local(path):
    return isinstance(path, str) and '://' not in path


def _peek_seed(path):
    """The seed stored in a checkpoint's meta, reading as little as possible (None if unknown)."""
    try:
        ckpt = torch.load(path, map_location='cpu', mmap=True, weights_only=True)
        return ckpt.get('meta', {}).get('seed')
    except Exception:
        return None


# ----------------------------------------------------------------------------- input sizes
_SIZE_KEYS = {
    'RandomResizedCrop': 'scale', 'RandomResizedCropAndInterpolation': 'size',
    'CenterCrop': 'crop_size', 'RandomCrop': 'crop_size', 'Resize': 'scale',
    'ResizeEdge': 'scale', 'FixScaleResize': 'scale', 'RandomChoiceResize': None,
}


def pipeline_output_size(pipeline):
    """``(H, W)`` of the images a pipeline produces, from its last sizing transform, or None."""
    size = None
    for t in pipeline or []:
        if not isinstance(t, dict):
            continue
        name = str(t.get('type', '')).split('.')[-1]
        key = _SIZE_KEYS.get(name)
        if key is None or t.get(key) is None:
            continue
        value = t[key]
        if isinstance(value, (int, float)):
            size = (int(value), int(value))
        elif isinstance(value, (list, tuple)) and len(value) == 2 and all(
                isinstance(v, (int, float)) for v in value):
            size = (int(value[1]), int(value[0]))  # (w, h) -> (H, W)
    return size


def _pipelines(dataloader_cfg):
    from stm_mm.datasets.validation import iter_datasets
    if not isinstance(dataloader_cfg, dict):
        return []
    return [ds.get('pipeline') for ds in iter_datasets(dataloader_cfg.get('dataset'))]


@RUNNERS.register_module()
class ReliableRunner(Runner):
    """See the module docstring. A drop-in replacement of ``mmengine.runner.Runner``."""

    def __init__(self, *args, **kwargs):
        self._reliability = reliability_options(kwargs.get('cfg'))
        self._ckpt_cache = None     # (path, checkpoint) verified by the auto-resume lookup
        self._fit_check = False     # the next load_checkpoint must fit the model exactly
        self._loaded_meta = None
        super().__init__(*args, **kwargs)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_cfg(cls, cfg):
        cfg = copy.deepcopy(cfg)
        reliability_options(cfg)  # unknown option names fail before anything is built
        randomness = cfg.get('randomness') or {}
        if cfg.get('resume') and randomness.get('seed') is None:
            # without a seed, a resumed run would draw a new one and shuffle the data in another
            # order; use the seed the checkpoint was trained with (Runner.resume does this too,
            # but only after the dataloaders exist)
            path = cfg.get('load_from') or cls._pointer_target(cfg.get('work_dir'))
            seed = _peek_seed(path) if path and _is_local(path) and osp.isfile(path) else None
            if seed is not None:
                cfg.randomness = dict(randomness, seed=seed)
        return super().from_cfg(cfg)

    def register_default_hooks(self, hooks=None):
        hooks = dict(hooks) if hooks is not None else {}
        ckpt = hooks.get('checkpoint', dict(type='CheckpointHook', interval=1))
        if isinstance(ckpt, dict) and ckpt.get('type') in ('CheckpointHook',
                                                           'mmengine.CheckpointHook',
                                                           CheckpointHook):
            ckpt = dict(ckpt, type=ReliableCheckpointHook)
            hooks['checkpoint'] = ckpt
        super().register_default_hooks(hooks)

    def register_hooks(self, default_hooks=None, custom_hooks=None):
        # MMEngine calls register_custom_hooks only for configs that have custom_hooks
        super().register_hooks(default_hooks, custom_hooks)
        if self._reliability['finite_loss'] and not any(
                isinstance(h, FiniteLossHook) for h in self._hooks):
            self.register_hook(FiniteLossHook())

    # ------------------------------------------------------------------ entry points
    def train(self):
        self._preflight(('train', 'val'))
        self._guard_images(('train', 'val'))
        self._seed_samples()
        if self._reliability['check_input_size']:
            self._check_input_sizes(('train', 'val'))
        self._check_pretrained_inits()
        return super().train()

    def val(self):
        self._preflight(('val', ))
        self._guard_images(('val', ))
        return super().val()

    def _maybe_compile(self, target):
        """``compile`` (``tools/train.py --compile``): ``torch.compile`` the backbone's forward.

        MMEngine compiles the whole ``train_step``, optimizer step included, which dynamo of
        torch 2.14 cannot trace (an internal error in its optimizer support with MMEngine's
        ``OptimWrapper``); the backbone, where nearly all of the step's time goes, compiles to
        one graph for every STM (``tests/test_models/test_compiled_training.py``).
        """
        options = self.cfg.get('compile')
        if not options:
            return
        model = self.model.module if is_model_wrapper(self.model) else self.model
        module = getattr(model, 'backbone', model)
        module.forward = torch.compile(module.forward, **({} if options is True else options))
        self.logger.info(f'compiled the {type(module).__name__} forward ({target} of MMEngine '
                         'stays eager); the first iterations are slow')

    def test(self):
        self._preflight(('test', ))
        self._guard_images(('test', ))
        return super().test()

    def build_val_loop(self, loop):
        """The val loop, run with the RNG states saved before and restored after it.

        Validation draws random numbers (every ``iter(DataLoader)`` takes a base seed from
        torch's global RNG). Without the isolation the training after a validation would depend
        on it, and a run resumed from the checkpoint written just before that validation would
        diverge from the uninterrupted one.
        """
        loop = super().build_val_loop(loop)
        if self._reliability['save_rng_state'] and not getattr(loop, '_rng_isolated', False):
            run = loop.run

            def run_isolated(*args, **kwargs):
                state = _rng_state()
                try:
                    return run(*args, **kwargs)
                finally:
                    _set_rng_state(state)

            loop.run = run_isolated
            loop._rng_isolated = True
        return loop

    # ------------------------------------------------------------------ data checks
    def _preflight(self, splits):
        if not self._reliability['check_data']:
            return
        from stm_mm.datasets.validation import validate_dataset_cfg
        for split in splits:
            loader = getattr(self, f'_{split}_dataloader', None)
            if not isinstance(loader, dict) or not isinstance(loader.get('dataset'), dict):
                continue
            if split == 'val' and self._val_loop is None:
                continue
            replaced = validate_dataset_cfg(
                loader['dataset'], split, skip_invalid=self._reliability['skip_invalid'],
                work_dir=self.work_dir, logger=self.logger)
            if replaced:
                self._redirect_evaluator(split, replaced)

    def _guard_images(self, splits):
        """Decode images with :class:`SafeLoadImageFromFile` (one-line errors naming the file);
        with ``skip_invalid``, wrap the datasets in :class:`SkipUnreadable` and gather what they
        skip with :class:`UnreadableImagesHook`."""
        from stm_mm.datasets.image_loading import SafeLoadImageFromFile
        from stm_mm.datasets.unreadable import SkipUnreadable
        from stm_mm.datasets.validation import iter_datasets

        from .unreadable_images import UnreadableImagesHook, record_file
        skip = self._reliability['skip_invalid']
        for split in splits:
            loader = getattr(self, f'_{split}_dataloader', None)
            if not isinstance(loader, dict) or not isinstance(loader.get('dataset'), dict):
                continue
            for ds in iter_datasets(loader['dataset']):
                ds['pipeline'] = [
                    dict(t, type=SafeLoadImageFromFile,
                         max_pixels=self._reliability['max_image_pixels'])
                    if isinstance(t, dict) and _is_load_image(t.get('type')) else t
                    for t in ds.get('pipeline') or []]
            if skip:
                record = record_file(self.work_dir, split, self.rank)
                if not self._resume and osp.isfile(record):
                    os.remove(record)  # a resumed run keeps counting the skips of its start
                loader['dataset'] = dict(type=SkipUnreadable, dataset=loader['dataset'],
                                         record_file=record,
                                         skip_list=self._reliability['skip_list'])
        if skip and not any(isinstance(h, UnreadableImagesHook) for h in self._hooks):
            self.register_hook(UnreadableImagesHook(self._reliability['max_unreadable']))

    def _seed_samples(self):
        """Augment each training sample with RNGs seeded from (seed, rank, epoch, position)
        (:mod:`stm_mm.datasets.sample_seeds`): data-loader workers, persistent or not, then
        produce the same batches after a resume as in the uninterrupted run."""
        loader = self._train_dataloader
        if not (self._reliability['save_rng_state'] and isinstance(loader, dict)
                and isinstance(loader.get('dataset'), dict)
                and isinstance(loader.get('sampler'), dict)):
            return
        from stm_mm.datasets.sample_seeds import SeededSampler, SeededSamples
        loader['dataset'] = dict(type=SeededSamples, dataset=loader['dataset'])
        loader['sampler'] = dict(type=SeededSampler, sampler=loader['sampler'])

    @staticmethod
    def build_dataloader(dataloader, seed=None, diff_rank_seed=False):
        """``Runner.build_dataloader``; the loader's ``iter()`` leaves torch's global RNG alone
        (:class:`~stm_mm.datasets.sample_seeds.RngNeutralDataLoader`)."""
        from torch.utils.data import DataLoader

        from stm_mm.datasets.sample_seeds import RngNeutralDataLoader
        loader = Runner.build_dataloader(dataloader, seed, diff_rank_seed)
        if type(loader) is DataLoader:
            loader.__class__ = RngNeutralDataLoader
        return loader

    def _redirect_evaluator(self, split, replaced):
        evaluator = getattr(self, f'_{split}_evaluator', None)
        if isinstance(evaluator, dict) and 'metrics' in evaluator:
            evaluator = evaluator['metrics']
        items = evaluator if isinstance(evaluator, (list, tuple)) else [evaluator]
        for item in items:
            if isinstance(item, dict) and isinstance(item.get('ann_file'), str):
                new = replaced.get(osp.abspath(item['ann_file']))
                if new:
                    item['ann_file'] = new
                    self.logger.warning(f'{split} evaluator reads the cleaned {new}')

    # ------------------------------------------------------------------ input sizes
    def _check_input_sizes(self, splits):
        model = self.model.module if is_model_wrapper(self.model) else self.model
        probe = getattr(model, 'extract_feat', None) or getattr(model, 'backbone', None)
        if probe is None:
            return
        in_ch = getattr(getattr(model, 'backbone', None), 'in_channels', 3)
        if not isinstance(in_ch, int):
            in_ch = 3
        sizes = {}
        for split in splits:
            if split == 'val' and self._val_loop is None:
                continue
            for pipeline in _pipelines(getattr(self, f'_{split}_dataloader', None)):
                size = pipeline_output_size(pipeline)
                if size and max(size) <= 384:  # the failures are small inputs
                    sizes.setdefault(size, split)
        if not sizes:
            return
        was_training = model.training
        model.eval()
        try:
            for (h, w), split in sizes.items():
                err = self._probe(probe, in_ch, h, w)
                if err is None:
                    continue
                fits = next((s for s in (32, 48, 64, 96, 128, 160, 192, 224, 256, 320, 384)
                             if s >= min(h, w) and self._probe(probe, in_ch, s, s) is None),
                            None)
                hint = (f'make the pipeline produce at least {fits}x{fits} images' if fits
                        else 'change the pipeline\'s output size or the model')
                raise InputSizeError(
                    f'the model cannot take the {h}x{w} images the {split} pipeline produces '
                    f'[{type(err).__name__}: {_first_line(err, 160)}]; fix: {hint}')
        finally:
            model.train(was_training)

    @staticmethod
    def _probe(fn, in_ch, h, w):
        try:
            with torch.no_grad():
                fn(torch.zeros(1, in_ch, h, w))
            return None
        except Exception as e:  # noqa: B902 - any failure is the answer
            return e

    # ------------------------------------------------------------------ pretrained init
    def _check_pretrained_inits(self):
        model = self.model.module if is_model_wrapper(self.model) else self.model
        for name, module in model.named_modules():
            init_cfg = getattr(module, 'init_cfg', None)
            for cfg in (init_cfg if isinstance(init_cfg, (list, tuple)) else [init_cfg]):
                if not isinstance(cfg, dict) or cfg.get('type') != 'Pretrained':
                    continue
                path = cfg.get('checkpoint')
                if not _is_local(path):  # URLs, torchvision://, open-mmlab://: not checked
                    continue
                self._check_pretrained(name or type(module).__name__, module, path,
                                       cfg.get('prefix'))

    def _check_pretrained(self, name, module, path, prefix):
        where = f'init_cfg Pretrained of {name}'
        try:
            ckpt = read_checkpoint(path)
        except CheckpointError as e:
            raise CheckpointError(f'{where}: {e}') from None
        sd = state_dict_of(ckpt)
        if prefix:
            prefix = prefix if prefix.endswith('.') else prefix + '.'
            sd = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
        own = module.state_dict()
        missing = sorted(set(own) - set(sd))
        unexpected = sorted(set(sd) - set(own))
        misshaped = sorted(f'{k}: {tuple(sd[k].shape)} vs {tuple(own[k].shape)}'
                           for k in set(own) & set(sd)
                           if hasattr(sd[k], 'shape') and tuple(sd[k].shape) != tuple(own[k].shape))
        fix = ('fix: use the checkpoint of the matching model (stm, arch), the right prefix, '
               'or set reliability=dict(strict_load=False)')
        if self._reliability['strict_load'] and (misshaped or not set(own) & set(sd)):
            what = (f'{len(misshaped)} mis-shaped tensor(s): {", ".join(misshaped[:5])}'
                    if misshaped else
                    f'no key in common (prefix {prefix!r}; the module has {len(own)} keys)')
            raise CheckpointError(f'{where}: {path} does not fit: {what}; {fix}')
        if missing or unexpected or misshaped:
            self.logger.warning(
                f'{where}: {path} loads {len(set(own) & set(sd)) - len(misshaped)}/{len(own)} '
                f'tensors; missing {len(missing)} {missing[:5]}, unexpected {len(unexpected)} '
                f'{unexpected[:5]}, mis-shaped {len(misshaped)} {misshaped[:5]}')

    # ------------------------------------------------------------------ checkpoints: load
    @staticmethod
    def _pointer_target(work_dir):
        if not work_dir:
            return None
        pointer = osp.join(work_dir, 'last_checkpoint')
        try:
            with open(pointer) as f:
                target = f.read().strip()
        except OSError:
            return None
        if target and not osp.exists(target):
            moved = osp.join(work_dir, osp.basename(target))
            if osp.exists(moved):  # the work dir was moved or copied
                target = moved
        return target or None

    def _checkpoint_dirs(self):
        dirs = [self.work_dir]
        for hook in self._hooks:
            out = getattr(hook, 'out_dir', None)
            if isinstance(hook, CheckpointHook) and isinstance(out, str) and _is_local(out):
                if out != self.work_dir:
                    dirs.append(osp.join(out, osp.basename(self.work_dir.rstrip('/'))))
        return dirs

    def find_resumable_checkpoint(self):
        """The checkpoint auto-resume uses: the ``last_checkpoint`` pointer's file if it loads,
        else the newest loadable ``*.pth`` (``best_*`` excluded: they lack optimizer state).

        Every skipped file is logged. Returns None when there is no checkpoint at all; raises
        :class:`CheckpointError` when there are checkpoints but none loads.
        """
        pointer = self._pointer_target(self.work_dir)
        found = []
        for d in self._checkpoint_dirs():
            if osp.isdir(d):
                import glob
                found += [p for p in glob.glob(osp.join(d, '*.pth'))
                          if not osp.basename(p).startswith('best_') and osp.isfile(p)]
        found.sort(key=checkpoint_sort_key, reverse=True)
        candidates = ([pointer] if pointer else []) + [
            p for p in found if not pointer or osp.abspath(p) != osp.abspath(pointer)]
        if osp.exists(osp.join(self.work_dir, 'last_checkpoint')) and not pointer:
            self.logger.warning('last_checkpoint is empty (interrupted write?); looking for '
                                'the newest loadable checkpoint')
        rejected = []
        for path in candidates:
            try:
                ckpt = read_checkpoint(path, map_location='cpu')
                if not isinstance(ckpt, dict) or 'meta' not in ckpt or 'state_dict' not in ckpt:
                    raise CheckpointError(f'checkpoint {path} has no meta/state_dict: not a '
                                          'training checkpoint', 'not a training checkpoint')
            except CheckpointError as e:
                rejected.append((path, e.kind))
                self.logger.warning(f'Auto-resume skips {path}: {_first_line(e)}')
                continue
            if rejected:
                self.logger.warning(f'Auto-resume falls back to {path} (the newest loadable '
                                    f'checkpoint; skipped: {", ".join(p for p, _ in rejected)})')
            self._ckpt_cache = (path, ckpt)
            return path
        if rejected:
            kinds = {}
            for path, kind in rejected:
                kinds.setdefault(kind, []).append(path)
            what = '; '.join(f'{len(paths)} {kind}: {", ".join(paths)}'
                             for kind, paths in kinds.items())
            if len(kinds) == 1:
                what = f'all {len(rejected)} are {what.split(" ", 1)[1]}'
            unsafe = ('pass --unsafe-load only if you trust the refused file(s), or '
                      if 'refused as unsafe' in kinds else '')
            raise CheckpointError(
                f'no loadable checkpoint in {self.work_dir} to resume from ({what}); fix: '
                f'{unsafe}restore a checkpoint or start without --resume')
        return None

    def load_or_resume(self):
        if self._has_loaded:
            return None
        if self._resume and self._load_from is None:
            path = self.find_resumable_checkpoint()
            if path is None:
                self.logger.warning(f'--resume: no checkpoint in {self.work_dir}; training '
                                    'starts from scratch')
            else:
                self.logger.info(f'Auto resumed from the latest checkpoint {path}.')
                self.resume(path)
                self._has_loaded = True
        elif self._resume:
            self.resume(self._load_from)
            self._has_loaded = True
        elif self._load_from is not None:
            self._fit_check = self._reliability['strict_load']
            try:
                self.load_checkpoint(self._load_from)
            finally:
                self._fit_check = False
            self._has_loaded = True

    def load_checkpoint(self, filename, map_location='cpu', strict=False,
                        revise_keys=[(r'^module.', '')]):
        if self._ckpt_cache is not None and self._ckpt_cache[0] == filename:
            checkpoint = self._ckpt_cache[1]
            self._ckpt_cache = None
        else:
            checkpoint = read_checkpoint(filename, map_location=map_location)
        model = self.model.module if is_model_wrapper(self.model) else self.model
        if self._fit_check:
            try:
                check_state_dict_fits(model, state_dict_of(checkpoint, revise_keys))
            except KeyError as e:
                text = e.args[0] if e.args else str(e)
                lines = text.splitlines()
                body = [ln.strip() for ln in lines[1:] if ln.startswith('  ')]
                raise CheckpointError(
                    f'checkpoint {filename} does not fit the model: ' + '; '.join(body) +
                    '; fix: use a checkpoint of this config (stm, arch, num_classes), or, for '
                    'a partial load on purpose, --non-strict-load (config: '
                    'reliability=dict(strict_load=False))') from None
        self._loaded_meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        checkpoint = _load_checkpoint_to_model(model, checkpoint, strict,
                                               revise_keys=revise_keys)
        self._has_loaded = True
        self.logger.info(f'Load checkpoint from {filename}')
        return checkpoint

    def resume(self, filename, resume_optimizer=True, resume_param_scheduler=True,
               map_location='default'):
        self._fit_check = True  # resuming another model's checkpoint is never intended
        try:
            super().resume(filename, resume_optimizer, resume_param_scheduler, map_location)
        except CheckpointError as e:
            if e.kind != 'truncated or corrupt':
                raise
            raise CheckpointError(f'{e}, or resume from an earlier checkpoint (--resume '
                                  'without a path picks the newest complete one)', e.kind) from None
        finally:
            self._fit_check = False
        state = (self._loaded_meta or {}).get('rng_state')
        if not (state and self._reliability['save_rng_state']):
            return
        if self._randomness_cfg.get('diff_rank_seed') and self.world_size > 1:
            self.logger.info('diff_rank_seed: RNG states are per rank and not restored')
            return
        loop = self.train_loop
        if hasattr(loop, 'dataloader_iterator') and self.iter > 0:
            # IterBasedTrainLoop first fetches (and discards) `iter` batches, which draws
            # random numbers in the data pipeline: restore the RNG after those
            loop.dataloader_iterator = _RestoreRngAfter(loop.dataloader_iterator, self.iter,
                                                        state)
        else:
            _set_rng_state(state)

    # ------------------------------------------------------------------ checkpoints: save
    def _assert_finite_weights(self):
        model = self.model.module if is_model_wrapper(self.model) else self.model
        for name, tensor in model.state_dict().items():
            if torch.is_tensor(tensor) and tensor.is_floating_point() and \
                    not bool(torch.isfinite(tensor).all()):
                raise NonFiniteLossError(
                    f'weights are non-finite at iteration {self.iter + 1} ({name} holds '
                    'NaN/Inf); refusing to save a checkpoint of this state; the last good '
                    'checkpoint is kept; fix: lower the learning rate or clip gradients')

    def save_checkpoint(self, out_dir, filename, file_client_args=None, save_optimizer=True,
                        save_param_scheduler=True, meta=None, by_epoch=True, backend_args=None):
        """``Runner.save_checkpoint`` writing atomically (local paths), with the RNG states,
        refusing non-finite weights."""
        self._assert_finite_weights()  # on every rank: all of them must stop together
        if self.rank != 0:
            return
        if meta is None:
            meta = {}
        elif not isinstance(meta, dict):
            raise TypeError(f'meta should be a dict or None, but got {type(meta)}')
        if self._reliability['save_rng_state']:
            meta.setdefault('rng_state', _rng_state())
        if (file_client_args is not None or backend_args is not None
                or not _is_local(out_dir)):
            return super().save_checkpoint(out_dir, filename, file_client_args, save_optimizer,
                                           save_param_scheduler, meta, by_epoch, backend_args)
        import mmengine.runner.runner as runner_module
        original = runner_module.save_checkpoint

        def atomic_save(checkpoint, path, **kwargs):
            try:
                atomic_write(path, lambda f: torch.save(checkpoint, f))
            except Exception as e:  # noqa: B902 - a full disk is named, the rest re-raised
                if not is_disk_full(e):
                    raise
                intact = last_good_checkpoint(self)
                kept = (f'{intact} is intact (last_checkpoint points to it)' if intact else
                        'no earlier checkpoint exists')
                raise CheckpointError(
                    f'the disk is full: writing checkpoint {path} failed [{type(e).__name__}: '
                    f'{_first_line(e, 120)}]; the partial file was deleted and {kept}; fix: '
                    'free space on that disk (or move work_dir), then continue with --resume',
                    'disk full') from None

        # Runner.save_checkpoint assembles the checkpoint (meta, weights, optimizer, schedulers,
        # message hub, before_save_checkpoint hooks) and hands it to this module-level function
        runner_module.save_checkpoint = atomic_save
        try:
            return super().save_checkpoint(out_dir, filename, None, save_optimizer,
                                           save_param_scheduler, meta, by_epoch, None)
        finally:
            runner_module.save_checkpoint = original
