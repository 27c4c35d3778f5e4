"""Reading and writing checkpoints without ever running code from a file.

Every entry point reads through :func:`load_checkpoint`: ``tools/train.py`` (``load_from``,
``--resume``, ``init_cfg=dict(type='Pretrained')``, through MMEngine's ``CheckpointLoader``, whose
local-file and http(s) schemes :func:`install_mmengine_loader` replaces), ``tools/test.py``, the
converters in ``tools/model_converters``, the analysis tools and ``stm_mm.transfer``.

``.pth`` files are read with ``torch.load(weights_only=True)``: the unpickler builds tensors,
containers and primitives, and only the classes of :func:`allowed_globals`, the Python objects
that the authors' releases and MMEngine 0.10.7 checkpoints contain:

* ``argparse.Namespace``: the authors' training checkpoints store their ``args``;
* ``mmengine.logging.HistoryBuffer``: MMEngine's ``message_hub`` state (logged scalars);
* numpy's ``_reconstruct``/``ndarray``/``scalar``/``dtype`` and the numeric ``np.dtypes`` classes:
  the histories inside ``HistoryBuffer`` and numpy scalars in ``message_hub.runtime_info``;
* ``builtins.getattr``, resolved to :func:`_restricted_getattr`: ``HistoryBuffer`` keeps its
  ``statistics_methods`` (``HistoryBuffer.min``/``max``/``current``/``mean``) in the instance,
  and pickle's protocol 2 (``torch.save``'s default) writes a method as
  ``getattr(HistoryBuffer, 'mean')``. The stand-in resolves exactly those names on exactly that
  class and refuses every other ``getattr``, so no chain of attribute lookups can reach a
  module, a function's globals or ``__builtins__``.

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
import pickle
import pickletools
import re
import zipfile
from collections import OrderedDict

import torch

UNSAFE_ENV = 'STM_MM_UNSAFE_LOAD'
_META_KEY = 'stm_mm_meta'  # safetensors metadata entry holding the checkpoint's `meta` as JSON
_SAFETENSORS = '.safetensors'


class CheckpointReadError(ValueError):
    """A checkpoint file that cannot be read; the message says why and what to do."""

    exit_code = 2


class UnsafeCheckpointError(CheckpointReadError):
    """The file holds Python objects outside the allow-list (it was not loaded)."""


class CorruptCheckpointError(CheckpointReadError):
    """The file is a checkpoint format but truncated or damaged."""


class NotACheckpointError(CheckpointReadError):
    """The file is not a PyTorch or safetensors file at all."""


class _ForbiddenGetattr(Exception):

    def __init__(self, what):
        super().__init__(what)
        self.what = what


# ----------------------------------------------------------------------------- allow-list
def _history_buffer_methods():
    from mmengine.logging import HistoryBuffer
    return HistoryBuffer, frozenset(HistoryBuffer._statistics_methods) | {
        'min', 'max', 'current', 'mean'}


def _restricted_getattr(obj, name, *default):
    """``getattr`` for unpickling: only ``HistoryBuffer.<statistics method>`` (see module doc)."""
    cls, names = _history_buffer_methods()
    if obj is cls and name in names and not default:
        return getattr(cls, name)
    shown = getattr(obj, '__qualname__', type(obj).__name__)
    raise _ForbiddenGetattr(f'getattr({shown}, {name!r})')


def allowed_globals():
    """The allow-list, in ``torch.serialization.add_safe_globals`` form."""
    import numpy as np
    from mmengine.logging import HistoryBuffer
    core = getattr(np, '_core', None) or np.core
    numeric = (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32,
               np.uint64, np.float16, np.float32, np.float64)
    dtype_classes = sorted({type(np.dtype(t)) for t in numeric}, key=lambda c: c.__name__)
    return [argparse.Namespace, HistoryBuffer, core.multiarray.scalar,
            core.multiarray._reconstruct, np.ndarray, np.dtype,
            (_restricted_getattr, 'builtins.getattr'), *dtype_classes]


def register_allowed_globals():
    """Add the allow-list to torch's (so plain ``torch.load(weights_only=True)`` reads MMEngine
    checkpoints too). Idempotent."""
    torch.serialization.add_safe_globals(allowed_globals())


# ----------------------------------------------------------------------------- reading
def unsafe_load_enabled():
    return os.environ.get(UNSAFE_ENV, '').lower() in ('1', 'true', 'yes')


def _fix_unsafe():
    return (f'fix: only if you trust the file, pass --unsafe-load (library use: '
            f'{UNSAFE_ENV}=1), or ask its source for a .safetensors file')


# pickle opcodes that import or call objects, which the weights-only unpickler does not support
_CALLING_OPCODES = {105: 'INST', 111: 'OBJ', 130: 'EXT1', 131: 'EXT2', 132: 'EXT4',
                    146: 'NEWOBJ_EX', 147: 'STACK_GLOBAL'}


def _forbidden_object(message):
    """The object named by torch's weights-only error message, or None (other failures)."""
    for pattern in (r'Unsupported global: GLOBAL ([\w.]+)', r'unsupported GLOBAL ([\w.]+)',
                    r'unrecognized function (.+?)(?: which belongs|$|\n)',
                    r'Can only create new object for .*? but got (.+?)(?:$|\n)'):
        m = re.search(pattern, message)
        if m:
            return m.group(1).strip()
    m = re.search(r'Unsupported operand (\d+)', message)
    if m and int(m.group(1)) in _CALLING_OPCODES:
        return f'pickle opcode {_CALLING_OPCODES[int(m.group(1))]}'
    return None


def _pickle_info(path):
    """``(protocol, global names)`` of the first pickle in ``path``, read opcode by opcode
    without running anything; None when the file does not start with a complete pickle."""
    names, strings, protocol = [], [], 0
    try:
        with open(path, 'rb') as f:
            for op, arg, _ in pickletools.genops(f):
                if op.name == 'PROTO':
                    protocol = arg
                elif op.name in ('GLOBAL', 'INST'):
                    names.append(str(arg).replace(' ', '.'))
                elif op.name == 'STACK_GLOBAL' and len(strings) >= 2:
                    names.append(f'{strings[-2]}.{strings[-1]}')
                elif isinstance(arg, str):
                    strings.append(arg)
    except Exception:  # noqa: B902 - not a pickle, or truncated
        return None
    return protocol, names


def _allowed_name(name):
    allowed = {f'{getattr(g, "__module__", "")}.{getattr(g, "__qualname__", "")}'
               for g in allowed_globals() if not isinstance(g, tuple)}
    return (name.startswith('torch.') or name in allowed
            or name in ('collections.OrderedDict', 'builtins.getattr'))


def _plain_pickle_refusal(path, message):
    """The :class:`UnsafeCheckpointError` for a plain pickle (not ``torch.save``'s format) that
    the weights-only unpickler refused, or None (other files, other failures)."""
    if zipfile.is_zipfile(path):
        return None
    info = _pickle_info(path)
    if info is None:
        return None
    protocol, names = info
    forbidden = next((n for n in names if not _allowed_name(n)), None)
    opcode = re.search(r'Unsupported operand (\d+)', message)
    if forbidden is None and opcode is None and protocol >= 2:
        return None  # a torch legacy-format file, damaged after its first pickle
    if forbidden:
        what = f'Python objects that loading would execute ({forbidden})'
    elif opcode:
        op = pickletools.code2op.get(chr(int(opcode.group(1))))
        what = (f'pickle opcode {op.name if op else opcode.group(1)} that the safe loader does '
                'not read')
    else:
        what = 'a pickle of protocol 0/1, which the safe loader does not read'
    return UnsafeCheckpointError(
        f'checkpoint {path} is a plain pickle (protocol {protocol}, not torch.save\'s format) '
        f'with {what}; it was not loaded; {_fix_unsafe()}')


def _head(path, n=16):
    with open(path, 'rb') as f:
        return f.read(n)


def _is_safetensors(path):
    """8-byte little-endian header length followed by a JSON object."""
    head = _head(path)
    if len(head) < 9:
        return False
    size = int.from_bytes(head[:8], 'little')
    return head[8:9] == b'{' and 0 < size <= osp.getsize(path) - 8


def _format_error(path):
    """The :class:`CheckpointReadError` for a file in no checkpoint format (empty, a zip archive
    without ``data.pkl``, neither a zip nor a pickle), or None."""
    size = osp.getsize(path)
    head = _head(path, 4)
    if size == 0:
        return CorruptCheckpointError(f'checkpoint {path} is empty (0 bytes): an interrupted '
                                      'copy or download; fix: copy or download the file again')
    if head.startswith(b'PK'):  # a zip archive: torch's format
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except (zipfile.BadZipFile, OSError):
            return None  # damaged: torch.load tells truncated/corrupt
        if not any(n.endswith('/data.pkl') or n == 'data.pkl' for n in names):
            return NotACheckpointError(
                f'checkpoint {path} is a zip archive but not a PyTorch checkpoint (no data.pkl '
                f'among its {len(names)} entries); fix: pass a .pth written by torch.save or a '
                '.safetensors')
    elif not head.startswith(b'\x80') and _pickle_info(path) is None:  # no zip, no pickle
        return NotACheckpointError(
            f'{path} is not a checkpoint ({size} bytes starting with {head!r}; a PyTorch '
            'checkpoint is a zip archive or a pickle, or use .safetensors); fix: check the path')
    return None


def check_checkpoint_format(path):
    """Raise :class:`CheckpointReadError` unless ``path`` is a file in a checkpoint format, without
    unpickling it (for tools that check their checkpoint argument before anything else)."""
    path = osp.expanduser(str(path))
    if not osp.isfile(path):
        raise CheckpointReadError(f'checkpoint file not found: {path}; fix: check the path')
    if not _is_safetensors(path):
        error = _format_error(path)
        if error is not None:
            raise error


def _describe_failure(path, exc):
    """The :class:`CheckpointReadError` for a ``torch.load`` failure."""
    text = str(exc)
    detail = text.split('WeightsUnpickler error:')[-1].strip()  # past torch's boilerplate
    first = detail.splitlines()[0] if detail else type(exc).__name__
    if isinstance(exc, _ForbiddenGetattr):
        forbidden = exc.what
    elif isinstance(exc, pickle.UnpicklingError):
        forbidden = _forbidden_object(text)
    else:
        forbidden = None
    if forbidden is not None and not forbidden.startswith('pickle opcode'):
        return UnsafeCheckpointError(
            f'checkpoint {path} contains Python objects that loading would execute '
            f'({forbidden}); it was not loaded; {_fix_unsafe()}')
    refusal = _plain_pickle_refusal(path, text)
    if refusal is not None:
        return refusal
    if forbidden is not None:
        return UnsafeCheckpointError(
            f'checkpoint {path} contains Python objects that loading would execute '
            f'({forbidden}); it was not loaded; {_fix_unsafe()}')
    return _format_error(path) or CorruptCheckpointError(
        f'checkpoint {path} cannot be read ({osp.getsize(path)} bytes): it is truncated or '
        f'corrupt [{type(exc).__name__}: {first[:160]}]; fix: copy or download the file again')


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
    if _is_safetensors(path):
        return _load_safetensors(path, map_location)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: B902 - pickle/zip/EOF errors, classified
        error = _describe_failure(path, e)
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


# ----------------------------------------------------------------------------- MMEngine, CLIs
def _load_from_local(filename, map_location=None):
    return load_checkpoint(filename, map_location=map_location)


def _load_from_http(filename, map_location=None, model_dir=None, progress=False):
    """MMEngine's http(s) scheme, reading the downloaded file with :func:`load_checkpoint`
    (``torch.hub.load_state_dict_from_url`` unpickles fully). Rank 0 downloads first."""
    from mmengine.dist import barrier, get_dist_info
    from torch.hub import download_url_to_file, get_dir
    model_dir = model_dir or osp.join(get_dir(), 'checkpoints')
    cached = osp.join(model_dir, osp.basename(filename.split('?')[0]))
    rank, world_size = get_dist_info()
    if rank == 0 and not osp.isfile(cached):
        os.makedirs(model_dir, exist_ok=True)
        download_url_to_file(filename, cached, progress=progress)
    if world_size > 1:
        barrier()  # the other ranks read rank 0's download
    return load_checkpoint(cached, map_location=map_location)


def install_mmengine_loader():
    """Make MMEngine read local files and URLs (``torchvision://``, ``open-mmlab://`` and
    ``mmcls://`` resolve to one of them) through :func:`load_checkpoint`."""
    import mmengine.runner.checkpoint as mm_checkpoint
    from mmengine.runner import CheckpointLoader
    CheckpointLoader.register_scheme('', _load_from_local, force=True)
    CheckpointLoader.register_scheme(('http://', 'https://'), _load_from_http, force=True)
    # the module-level names that the other schemes (open-mmlab://, ...) call directly
    mm_checkpoint.load_from_local = _load_from_local
    mm_checkpoint.load_from_http = _load_from_http


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
