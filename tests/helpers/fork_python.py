"""``python()``: a Python executable for the tests' command-line runs that starts in milliseconds.

A tool run in a fresh interpreter spends ~13 s of CPU importing torch, MMEngine, mmcv,
mmpretrain and mmdet on the 2-core test machine, most of the suite's subprocess time. This
module keeps one *zygote* per test process: a Python that imported those third-party packages
once (nothing of this repository) and forks a child for each run. ``python()`` returns the path
of a small client script that behaves as ``python`` does: the same argument forms (``SCRIPT``,
``-c CODE``, ``-m MODULE``, ``-u``), the caller's working directory, environment and open file
descriptors (its stdin/stdout/stderr pipes included), the child's exit status, or death by a
signal, as its own, and the signals it receives forwarded to the child. A run the zygote could
not reproduce faithfully (another interpreter option, an environment variable read when the
preloaded packages were imported, such as ``LD_PRELOAD``, ``MALLOC_*``, ``TORCH_*``,
``PYTHONHASHSEED``) falls back to exec'ing the real interpreter, so every run is a real process
with a real exit code either way. Children see ``sys.executable`` as this client, so the
processes a tool starts (torchrun's workers, say) are forked from the zygote too.

What differs from a fresh interpreter: the preloaded third-party modules are already in
``sys.modules`` (the repository's own code, ``stm_mm`` and ``tools/``, is imported by the child
as in a fresh process, so a missing ``custom_imports`` still fails), and ``sys.flags`` are the
zygote's. Tests whose subject is the interpreter's start itself (what ``import stm_mm`` changes,
which ``stm_mm`` a checkout imports) use ``sys.executable``.
"""
import atexit
import os
import os.path as osp
import shutil
import subprocess
import sys
import tempfile

# Imported by the zygote before it forks: third-party only.
PRELOAD = ('numpy', 'PIL.Image', 'cv2', 'scipy', 'matplotlib', 'matplotlib.pyplot', 'torch',
           'torchvision', 'mmengine', 'mmengine.runner', 'mmcv', 'mmcv.ops', 'mmpretrain',
           'mmpretrain.models', 'mmpretrain.datasets', 'mmpretrain.evaluation', 'mmpretrain.apis',
           'mmdet', 'mmdet.models', 'mmdet.datasets', 'mmdet.evaluation', 'mmdet.apis',
           'pycocotools.coco', 'safetensors.torch', 'onnx', 'triton')

# Environment variables that act when the interpreter starts or the preloaded packages are
# imported: a run whose environment differs from the zygote's in one of them is exec'd instead.
START_VARIABLE_PREFIXES = ('PYTHON', 'LD_', 'MALLOC_', 'GLIBC_', 'TORCH_', 'TORCHINDUCTOR_',
                           'TORCHDYNAMO_', 'PYTORCH', 'CUDA', 'NVIDIA', 'OMP_', 'KMP_', 'MKL_',
                           'OPENBLAS', 'TRITON', 'MPL', 'OPENCV')
# Exceptions, by name or by a prefix ending in '_': PYTHONPATH, PYTHONUNBUFFERED and
# OMP_NUM_THREADS are applied in the child, torchrun's TORCH_NCCL_* are read when a process group
# starts, PYTHON (the interpreter the repository's shell scripts use) is not Python's.
APPLIED_IN_CHILD = ('PYTHONPATH', 'PYTHONUNBUFFERED', 'OMP_NUM_THREADS', 'TORCH_NCCL_', 'PYTHON')

_started = {}


def python():
    """The path of this process's fork client (``sys.executable`` where fork is unavailable)."""
    if not hasattr(os, 'fork') or not hasattr(os, 'pidfd_open'):
        return sys.executable
    if 'client' not in _started:
        _started['client'] = _start()
    return _started['client']


def _start():
    folder = tempfile.mkdtemp(prefix='stm_mm_zygote_')
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    socket_path = osp.join(folder, 'zygote.sock')
    client = osp.join(folder, 'python')
    with open(osp.join(osp.dirname(__file__), 'fork_client.py')) as f:
        source = f.read()
    with open(client, 'w') as f:
        f.write(f'#!{sys.executable} -S\n' + source.replace(
            "REAL_PYTHON = None", f'REAL_PYTHON = {sys.executable!r}').replace(
            "SOCKET = None", f'SOCKET = {socket_path!r}'))
    os.chmod(client, 0o755)
    log = open(osp.join(folder, 'zygote.log'), 'w')
    server = osp.join(osp.dirname(__file__), 'fork_server.py')
    proc = subprocess.Popen(
        [sys.executable, server, socket_path, client, ','.join(PRELOAD),
         ','.join(START_VARIABLE_PREFIXES), ','.join(APPLIED_IN_CHILD)],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=folder)
    atexit.register(_stop, proc)
    return client


def _stop(proc):
    proc.kill()
    proc.wait()

