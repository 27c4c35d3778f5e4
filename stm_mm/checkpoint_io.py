"""Reading and writing checkpoints without ever running code from a file.

Every entry point reads through :func:`load_checkpoint`: ``tools/train.py`` (``load_from``,
``--resume``, ``init_cfg=dict(type='Pretrained')``, through MMEngine's ``CheckpointLoader``, whose
local-file and http(s) schemes :func:`stm_mm.patches.install` replaces), ``tools/test.py``, the
converters in ``tools/model_converters``, the analysis tools and ``stm_mm.transfer``.

``.pth`` files are read with ``torch.load(weights_only=True)``: the unpickler builds tensors,
containers and primitives, and only the classes of :mod:`stm_mm.checkpoint_allowlist`.

A file that needs anything else is refused with :class:`UnsafeCheckpointError` naming the object.
Full unpickling happens only when asked for (``--unsafe-load`` on the tools,
``STM_MM_UNSAFE_LOAD=1`` in the environment for library use), after the safe attempt failed, with a
warning naming the file. ``.safetensors`` files hold only tensors and string metadata, so they are
safe by construction; :func:`save_checkpoint` writes them with the ``meta`` dict as JSON.
"""
import argparse
import json
import logging
import os
import os.path as osp
from collections import OrderedDict

import torch

from .checkpoint_allowlist import allowed
from .checkpoint_diagnosis import UNSAFE_ENV, describe_failure, is_safetensors
from .errors import CheckpointReadError, CorruptCheckpointError, UnsafeCheckpointError

_META_KEY = 'stm_mm_meta'  # safetensors metadata entry holding the checkpoint's `meta` as JSON
_SAFETENSORS = '.safetensors'


def unsafe_load_enabled():
    return os.environ.get(UNSAFE_ENV, '').lower() in ('1', 'true', 'yes')


def _load_safetensors(path, map_location):
    from safetensors import SafetensorError, safe_open
    device = map_location if isinstance(map_location, (str, torch.device)) else 'cpu'
    try:
        with safe_open(path, framework='pt', device=str(device)) as f:
            state_dict = OrderedDict((k, f.get_tensor(k)) for k in f.keys())
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise CorruptCheckpointError(
            f'checkpoint {path} cannot be read as safetensors ({osp.getsize(path)} bytes): it is '
            f'truncated or corrupt [{str(e)[:160]}]; fix: copy or download the file again'
        ) from None
    checkpoint = dict(state_dict=state_dict)
    if _META_KEY in metadata:
        try:
            checkpoint['meta'] = json.loads(metadata[_META_KEY])
        except (ValueError, RecursionError) as e:
            raise CorruptCheckpointError(
                f'checkpoint {path}: its {_META_KEY} metadata is not valid JSON '
                f'[{type(e).__name__}: {str(e)[:120]}]; fix: write the file again '
                '(tools/model_converters/*.py --out-format safetensors)') from None
    return checkpoint


def load_checkpoint(path, map_location='cpu', logger='current'):
    """Read a ``.pth`` (weights only, allow-listed objects) or ``.safetensors`` checkpoint.

    Returns what ``torch.load`` returns; a ``.safetensors`` file becomes
    ``{'state_dict': tensors, 'meta': ...}`` (``meta`` when written by :func:`save_checkpoint`).
    Raises :class:`CheckpointReadError` (a ``ValueError``) with a one-line message: missing file,
    forbidden objects (:class:`UnsafeCheckpointError`), truncated/corrupt, not a checkpoint.
    """
    path = osp.expanduser(str(path))
    if not osp.isfile(path):
        raise CheckpointReadError(f'checkpoint file not found: {path}; fix: check the path')
    if is_safetensors(path):
        return _load_safetensors(path, map_location)
    try:
        with allowed():
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: B902 - pickle/zip/EOF errors, classified
        error = describe_failure(path, e)
    if not (isinstance(error, UnsafeCheckpointError) and unsafe_load_enabled()):
        raise error
    from mmengine.logging import print_log
    print_log(f'loading {path} with full unpickling ({UNSAFE_ENV}=1 / --unsafe-load): '
              'code stored in the file runs now; do this only for files you trust', logger=logger,
              level=logging.WARNING)
    return torch.load(path, map_location=map_location, weights_only=False)


# ----------------------------------------------------------------------------- writing
def save_checkpoint(checkpoint, path, out_format=None):
    """Write ``{'state_dict': ..., 'meta': ...}`` as ``.pth`` (``torch.save``) or safetensors.

    ``out_format``: ``'pth'``, ``'safetensors'``, or None (from the file name). Safetensors keeps
    only ``state_dict`` (tensors; shared storage is copied) and ``meta`` (as JSON metadata).
    """
    out_format = out_format or ('safetensors' if str(path).endswith(_SAFETENSORS) else 'pth')
    if out_format == 'pth':
        torch.save(checkpoint, path)
        return
    if out_format != 'safetensors':
        raise ValueError(f"out_format must be 'pth' or 'safetensors', got {out_format!r}")
    from safetensors.torch import save_file
    extra = sorted(set(checkpoint) - {'state_dict', 'meta'})
    if extra:
        raise ValueError(f'safetensors holds weights only; the checkpoint also has {extra}')
    tensors = {k: v.detach().cpu().clone(memory_format=torch.contiguous_format)
               for k, v in checkpoint['state_dict'].items()}
    metadata = {'format': 'pt'}
    if checkpoint.get('meta') is not None:
        metadata[_META_KEY] = json.dumps(checkpoint['meta'], default=str)
    save_file(tensors, str(path), metadata=metadata)


class _UnsafeLoadAction(argparse.Action):

    def __call__(self, parser, namespace, values, option_string=None):
        os.environ[UNSAFE_ENV] = '1'
        setattr(namespace, self.dest, True)


def add_unsafe_load_option(parser):
    """``--unsafe-load`` on a tool: sets ``STM_MM_UNSAFE_LOAD=1`` for the process (and the
    processes it starts)."""
    parser.add_argument('--unsafe-load', action=_UnsafeLoadAction, nargs=0, default=False,
                        help='read checkpoints that hold arbitrary Python objects with full '
                        'unpickling (runs code stored in the file): only for files you trust')


def add_checkpoint_tool_options(parser):
    """``--unsafe-load`` and ``--debug``: the options that a tool reading checkpoints through
    :func:`stm_mm.engine.cli.run_cli` has, since its error messages suggest them."""
    add_unsafe_load_option(parser)
    parser.add_argument('--debug', action='store_true', help='show tracebacks of errors')


def add_converter_options(parser):
    """The converters' ``--out-format``, ``--unsafe-load`` and ``--debug``."""
    parser.add_argument('--out-format', choices=['pth', 'safetensors'],
                        help='output format (default: from the file name, .safetensors or else '
                        'pth)')
    add_checkpoint_tool_options(parser)
