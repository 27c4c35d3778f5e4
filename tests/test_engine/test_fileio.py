"""``stm_mm.fileio``: the one all-or-nothing write, and the MMEngine file backend built on it."""
import errno
import os
import stat

import pytest
from mmengine.fileio import get_file_backend

from stm_mm.fileio import (ATOMIC_BACKEND_ARGS, AtomicLocalBackend, atomic_write,
                           atomic_write_text, remove_stale_temp_files)


def test_a_failed_write_keeps_the_old_file_and_leaves_nothing(tmp_path):
    path = str(tmp_path / 'a.txt')
    atomic_write_text(path, 'old')

    def full_disk(f):
        f.write(b'half')
        raise OSError(errno.ENOSPC, 'No space left on device')

    with pytest.raises(OSError, match='No space left'):
        atomic_write(path, full_disk)
    assert open(path).read() == 'old' and os.listdir(tmp_path) == ['a.txt']
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~umask


def test_stale_temp_files_are_removed(tmp_path):
    (tmp_path / '.iter_4.pth.x1.partial').write_bytes(b'half')
    (tmp_path / 'iter_2.pth').write_bytes(b'whole')
    assert remove_stale_temp_files(str(tmp_path)) == [str(tmp_path / '.iter_4.pth.x1.partial')]
    assert os.listdir(tmp_path) == ['iter_2.pth']


def test_mmengine_builds_the_atomic_backend_from_backend_args(tmp_path):
    backend = get_file_backend(str(tmp_path), backend_args=ATOMIC_BACKEND_ARGS)
    assert isinstance(backend, AtomicLocalBackend)
    backend.put(b'\x00\x01', tmp_path / 'c.pth')
    backend.put_text('iter_2.pth', tmp_path / 'last_checkpoint')
    assert (tmp_path / 'c.pth').read_bytes() == b'\x00\x01'
    assert (tmp_path / 'last_checkpoint').read_text() == 'iter_2.pth'
    assert sorted(os.listdir(tmp_path)) == ['c.pth', 'last_checkpoint']
