"""Reading a checkpoint for a run, and whether its weights fit a model.

:func:`read_checkpoint` turns every failure into a :class:`~stm_mm.errors.CheckpointError`
whose ``kind`` says what is wrong; :class:`KeyMismatch` lists missing, unexpected and mis-shaped
keys between a checkpoint and a model.
"""
import errno
import os.path as osp
import re
from collections import OrderedDict
from dataclasses import dataclass, field

from mmengine.runner.checkpoint import CheckpointLoader, load_state_dict

from ..checkpoint_diagnosis import check_checkpoint_format
from ..errors import (CheckpointError, CheckpointReadError, NotACheckpointError,
                      UnsafeCheckpointError)


def first_line(text, limit=300):
    """The first line of ``text``, cut at ``limit`` characters."""
    text = str(text).strip().splitlines()[0] if str(text).strip() else ''
    return text if len(text) <= limit else text[:limit] + '...'


def is_local(path):
    return isinstance(path, str) and '://' not in path


def is_disk_full(exc):
    """Whether a failed write ran out of space: ``ENOSPC``/``EDQUOT``, or torch's zip writer
    after a short write (``unexpected pos ...``, ``file write failed``)."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc)
    return any(s in text for s in ('No space left', 'unexpected pos', 'file write failed'))


def _kind_of(read_error):
    if isinstance(read_error, UnsafeCheckpointError):
        return 'refused as unsafe'
    if isinstance(read_error, NotACheckpointError):
        return 'not a checkpoint'
    if str(read_error).startswith('checkpoint file not found'):
        return 'missing'
    return 'truncated or corrupt'


def check_checkpoint_file(filename):
    """Raise :class:`CheckpointError` unless ``filename`` (a local path) is a file in a checkpoint
    format (:func:`stm_mm.checkpoint_io.check_checkpoint_format`); URLs pass."""
    if not is_local(str(filename)):
        return
    try:
        check_checkpoint_format(filename)
    except CheckpointReadError as e:
        raise CheckpointError(str(e), _kind_of(e)) from None


def read_checkpoint(filename, map_location='cpu'):
    """What MMEngine's ``CheckpointLoader`` reads from ``filename``, or :class:`CheckpointError`.

    Once :func:`stm_mm.patches.install` ran, local files and URLs are read by
    :func:`stm_mm.checkpoint_io.load_checkpoint` (weights only)."""
    if is_local(str(filename)) and not osp.isfile(filename):
        raise CheckpointError(f'checkpoint file not found: {filename}; fix: check the path '
                              '(load_from / --resume / init_cfg checkpoint)', 'missing')
    try:
        return CheckpointLoader.load_checkpoint(filename, map_location=map_location)
    except CheckpointReadError as e:
        raise CheckpointError(str(e), _kind_of(e)) from None
    except Exception as e:  # noqa: B902 - other MMEngine schemes (s3://, pavi://, ...)
        raise CheckpointError(f'checkpoint {filename} cannot be read [{type(e).__name__}: '
                              f'{first_line(e, 160)}]; fix: check the path and the file') from e


def weights_of(checkpoint, revise_keys=((r'^module.', ''), )):
    """The weights in a checkpoint (an ``OrderedDict`` keeping torch's ``_metadata``), keys
    revised by ``(pattern, replacement)`` pairs the way MMEngine's ``load_checkpoint`` does."""
    sd = checkpoint.get('state_dict', checkpoint) if isinstance(checkpoint, dict) else checkpoint
    metadata = getattr(sd, '_metadata', OrderedDict())
    for pattern, repl in revise_keys:
        sd = OrderedDict((re.sub(pattern, repl, k), v) for k, v in sd.items())
    sd = OrderedDict((k, v) for k, v in sd.items() if k != '_metadata')
    sd._metadata = metadata
    return sd


def load_weights(model, checkpoint, strict=False, revise_keys=((r'^module.', ''), )):
    """Load a checkpoint's weights into ``model`` (MMEngine's ``load_state_dict``: mismatches
    are logged, or raised with ``strict``)."""
    load_state_dict(model, weights_of(checkpoint, revise_keys), strict)


@dataclass
class KeyMismatch:
    """How a state dict differs from a model's: ``misshaped`` holds
    ``(key, checkpoint shape, model shape)``."""

    missing: list = field(default_factory=list)
    unexpected: list = field(default_factory=list)
    misshaped: list = field(default_factory=list)
    common: int = 0

    @classmethod
    def between(cls, own, state_dict):
        """Compare a model's ``state_dict()`` ``own`` with ``state_dict``."""
        both = set(own) & set(state_dict)
        shapes = {k: (tuple(state_dict[k].shape), tuple(own[k].shape)) for k in both
                  if hasattr(state_dict[k], 'shape')}
        misshaped = sorted((k, theirs, ours) for k, (theirs, ours) in shapes.items()
                           if theirs != ours)
        return cls(sorted(set(own) - set(state_dict)), sorted(set(state_dict) - set(own)),
                   misshaped, len(both))

    @property
    def fits(self):
        return not (self.missing or self.unexpected or self.misshaped)

    def describe(self, limit=10):
        """``'<n> missing: a, b; <n> mis-shaped: k: checkpoint (..) vs model (..)'``."""
        parts = []
        for title, items in (('missing', self.missing), ('unexpected', self.unexpected),
                             ('mis-shaped', [f'{k}: checkpoint {c} vs model {m}'
                                             for k, c, m in self.misshaped])):
            if items:
                more = f' ... (+{len(items) - limit} more)' if len(items) > limit else ''
                parts.append(f'{len(items)} {title}: {", ".join(items[:limit])}{more}')
        return '; '.join(parts)
