"""Why a checkpoint file cannot be read, in one line: refused as unsafe (naming the object),
truncated or corrupt, or no checkpoint at all; told apart without unpickling anything."""
import os.path as osp
import pickle
import pickletools
import re
import zipfile

from .checkpoint_allowlist import ForbiddenGetattr, is_allowed_name
from .errors import (CheckpointReadError, CorruptCheckpointError, NotACheckpointError,
                     UnsafeCheckpointError)

UNSAFE_ENV = 'STM_MM_UNSAFE_LOAD'


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




def _plain_pickle_refusal(path, message):
    """The :class:`UnsafeCheckpointError` for a plain pickle (not ``torch.save``'s format) that
    the weights-only unpickler refused, or None (other files, other failures)."""
    if zipfile.is_zipfile(path):
        return None
    info = _pickle_info(path)
    if info is None:
        return None
    protocol, names = info
    forbidden = next((n for n in names if not is_allowed_name(n)), None)
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


def is_safetensors(path):
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
    if not is_safetensors(path):
        error = _format_error(path)
        if error is not None:
            raise error


def describe_failure(path, exc):
    """The :class:`CheckpointReadError` for a ``torch.load`` failure."""
    text = str(exc)
    detail = text.split('WeightsUnpickler error:')[-1].strip()  # past torch's boilerplate
    first = detail.splitlines()[0] if detail else type(exc).__name__
    if isinstance(exc, ForbiddenGetattr):
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
