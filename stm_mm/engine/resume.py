"""Which checkpoint an auto-resume (``--resume`` without a path) starts from.

The ``last_checkpoint`` pointer's file if it loads, else the newest loadable ``*.pth`` of the
work dir and the checkpoint hooks' ``out_dir`` s (``best_*`` excluded: they lack the optimizer
state). Every file skipped is logged; when there are checkpoints but none loads, one
:class:`~stm_mm.errors.CheckpointError` sums up why.
"""
import glob
import os
import os.path as osp
import re

import torch

from ..errors import CheckpointError
from .loading import first_line, is_local, read_checkpoint

POINTER = 'last_checkpoint'
_NUMBER = re.compile(r'(\d+)')


def checkpoint_sort_key(path):
    """Newest first when sorted in reverse: (number in the name, modification time)."""
    numbers = _NUMBER.findall(osp.basename(path))
    try:
        mtime = os.path.getmtime(path)
    except OSError:
        mtime = 0.0
    return (int(numbers[-1]) if numbers else -1, mtime)


def pointer_target(work_dir):
    """The file ``work_dir/last_checkpoint`` names (found in ``work_dir`` when the folder was
    moved), or None."""
    if not work_dir:
        return None
    try:
        with open(osp.join(work_dir, POINTER)) as f:
            target = f.read().strip()
    except OSError:
        return None
    if target and not osp.exists(target):
        moved = osp.join(work_dir, osp.basename(target))
        if osp.exists(moved):  # the work dir was moved or copied
            target = moved
    return target or None


def last_good_checkpoint(work_dir):
    """The checkpoint a ``--resume`` would start from, for messages (None if unknown)."""
    try:
        with open(osp.join(work_dir, POINTER)) as f:
            return f.read().strip() or None
    except OSError:
        return None


def peek_seed(path):
    """The seed stored in a local checkpoint's meta, reading as little as possible (None if
    unknown)."""
    if not (path and is_local(path) and osp.isfile(path)):
        return None
    try:
        ckpt = torch.load(path, map_location='cpu', mmap=True, weights_only=True)
        return ckpt.get('meta', {}).get('seed')
    except Exception:  # noqa: B902 - any unreadable file: no seed
        return None


def checkpoint_dirs(work_dir, out_dirs):
    """``work_dir`` and, for each local checkpoint ``out_dir``, where MMEngine's
    ``CheckpointHook`` writes (``out_dir/<work_dir's name>``)."""
    dirs = [work_dir]
    for out in out_dirs:
        if isinstance(out, str) and is_local(out) and out != work_dir:
            dirs.append(osp.join(out, osp.basename(work_dir.rstrip('/'))))
    return dirs


def _candidates(work_dir, dirs):
    pointer = pointer_target(work_dir)
    found = []
    for d in dirs:
        if osp.isdir(d):
            found += [p for p in glob.glob(osp.join(d, '*.pth'))
                      if not osp.basename(p).startswith('best_') and osp.isfile(p)]
    found.sort(key=checkpoint_sort_key, reverse=True)
    return pointer, ([pointer] if pointer else []) + [
        p for p in found if not pointer or osp.abspath(p) != osp.abspath(pointer)]


def find_resumable_checkpoint(work_dir, dirs, logger):
    """``(path, checkpoint)`` of the checkpoint to resume from (searched in ``dirs``), or None
    when there is no checkpoint at all; raises :class:`CheckpointError` when none loads."""
    pointer, candidates = _candidates(work_dir, dirs)
    if osp.exists(osp.join(work_dir, POINTER)) and not pointer:
        logger.warning('last_checkpoint is empty (interrupted write?); looking for the newest '
                       'loadable checkpoint')
    rejected = []
    for path in candidates:
        try:
            ckpt = read_checkpoint(path, map_location='cpu')
            if not isinstance(ckpt, dict) or 'meta' not in ckpt or 'state_dict' not in ckpt:
                raise CheckpointError(f'checkpoint {path} has no meta/state_dict: not a '
                                      'training checkpoint', 'not a training checkpoint')
        except CheckpointError as e:
            rejected.append((path, e.kind))
            logger.warning(f'Auto-resume skips {path}: {first_line(e)}')
            continue
        if rejected:
            logger.warning(f'Auto-resume falls back to {path} (the newest loadable checkpoint; '
                           f'skipped: {", ".join(p for p, _ in rejected)})')
        return path, ckpt
    if not rejected:
        return None
    kinds = {}
    for path, kind in rejected:
        kinds.setdefault(kind, []).append(path)
    what = '; '.join(f'{len(paths)} {kind}: {", ".join(paths)}' for kind, paths in kinds.items())
    if len(kinds) == 1:
        what = f'all {len(rejected)} are {what.split(" ", 1)[1]}'
    unsafe = ('pass --unsafe-load only if you trust the refused file(s), or '
              if 'refused as unsafe' in kinds else '')
    raise CheckpointError(f'no loadable checkpoint in {work_dir} to resume from ({what}); fix: '
                          f'{unsafe}restore a checkpoint or start without --resume')
