"""All-or-nothing file writes: a crash leaves either the old file or the complete new one.

:func:`atomic_write` fills a temporary file in the target's folder, flushes and fsyncs it,
renames it over the target and fsyncs the folder. :class:`AtomicLocalBackend` is MMEngine's
``LocalBackend`` writing that way; registered as ``'stm_mm_atomic'``, it is what
``CheckpointHook(backend_args=ATOMIC_BACKEND_ARGS)`` saves checkpoints with (MMEngine's public
``register_backend`` / ``backend_args``).
"""
import json
import os
import os.path as osp
import tempfile
import time

from mmengine.fileio import LocalBackend, register_backend

TEMP_SUFFIX = '.partial'  # temporary files: '.<name>.<random>.partial' in the target folder
ATOMIC_BACKEND = 'stm_mm_atomic'
ATOMIC_BACKEND_ARGS = dict(backend=ATOMIC_BACKEND)


def _fsync_dir(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path, write, mode='wb'):
    """Create ``path`` all-or-nothing: ``write(f)`` fills a temporary file in the same folder,
    which is flushed, fsynced and renamed over ``path`` (then the folder is fsynced).

    The file gets the permissions of a newly created one (``0o666`` less the umask). At worst a
    crash leaves a ``.<name>.*.partial`` file (see :func:`remove_stale_temp_files`).
    """
    directory = osp.dirname(osp.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{osp.basename(path)}.', suffix=TEMP_SUFFIX,
                               dir=directory)
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(directory)


def atomic_write_text(path, text):
    """:func:`atomic_write` of a ``str``."""
    atomic_write(path, lambda f: f.write(text), mode='w')


def atomic_write_json(path, data):
    """:func:`atomic_write` of ``data`` as json."""
    atomic_write_text(path, json.dumps(data))


def remove_stale_temp_files(directory, min_age_s=0.0):
    """Delete ``.*.partial`` files left in ``directory`` by interrupted atomic writes; returns
    their paths."""
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    now = time.time()
    for name in names:
        if name.startswith('.') and name.endswith(TEMP_SUFFIX):
            path = osp.join(directory, name)
            try:
                if now - os.path.getmtime(path) >= min_age_s:
                    os.unlink(path)
                    removed.append(path)
            except OSError:
                pass
    return removed


@register_backend(ATOMIC_BACKEND)
class AtomicLocalBackend(LocalBackend):
    """MMEngine's ``LocalBackend`` whose ``put`` and ``put_text`` are :func:`atomic_write`."""

    def put(self, obj, filepath):
        atomic_write(str(filepath), lambda f: f.write(obj))

    def put_text(self, obj, filepath, encoding='utf-8'):
        atomic_write(str(filepath), lambda f: f.write(obj.encode(encoding)))
