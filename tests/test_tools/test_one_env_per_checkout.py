"""Each checkout has its own .venv, and tools run from it import that checkout's code only (#15).

The defect: all clones shared one environment whose editable install pointed at the clone where
`make` ran last, so after `make` in a second clone, tools in the first imported the second's code.
"""
import os
import os.path as osp
import shutil
import subprocess

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
VENV_PY = osp.join(ROOT, '.venv', 'bin', 'python')
DECOY = "raise SystemExit('error: imported the other clone\\'s stm_mm')\n"


# `python TOOL ARGS`, reporting which stm_mm the tool imported (runpy sets sys.path as python does).
RUN_TOOL = ("import atexit, os.path as p, runpy, sys; sys.argv = sys.argv[1:]; "
            "sys.path[0] = p.dirname(p.abspath(sys.argv[0])); "
            "atexit.register(lambda: print('stm_mm from', getattr(sys.modules.get('stm_mm'), "
            "'__file__', None))); runpy.run_path(sys.argv[0], run_name='__main__')")


def stm_mm_imported_by(python, checkout, tool_args):
    """The stm_mm/__init__.py that ``python TOOL ARGS``, run in checkout, imported."""
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    result = subprocess.run([python, '-c', RUN_TOOL, *tool_args], cwd=checkout, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.splitlines()[-1]


def test_venv_is_this_checkouts_own():
    venv = osp.join(ROOT, '.venv')
    assert osp.isdir(venv) and not osp.islink(venv), \
        'run `make env`: .venv must be a real environment inside this checkout'
    result = subprocess.run([VENV_PY, '-I', '-c', 'import importlib.util as u; '
                             'print(u.find_spec("stm_mm").origin)'],
                            cwd='/', capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == osp.join(ROOT, 'stm_mm', '__init__.py')


@pytest.mark.slow
def test_setting_up_another_clone_leaves_this_one_alone(tmp_path):
    """`make env` in a second clone (whose stm_mm is a decoy) must not change what this clone's
    tools import; an old-layout .venv link to a shared environment is replaced, its target kept."""
    other = tmp_path / 'other'
    for name in ('setup.py', 'requirements', 'tools/setup_env.sh', 'tools/uv_install.sh',
                 'tools/cxx20.sh'):
        src, dst = osp.join(ROOT, name), other / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if osp.isdir(src) else shutil.copy2)(src, dst)
    (other / 'stm_mm').mkdir()
    (other / 'stm_mm' / '__init__.py').write_text(DECOY)
    shared = tmp_path / 'shared-env'
    shared.mkdir()
    (shared / 'kept').write_text('')
    (other / '.venv').symlink_to(shared)

    # Offline, from the caches this checkout's .venv was made from: nothing is downloaded.
    with open(osp.join(ROOT, '.venv', 'stm_mm-caches')) as f:
        caches = dict(line.split('=', 1) for line in f.read().splitlines())
    env = dict(os.environ, **caches, STM_MM_NO_EXT='1', UV_OFFLINE='1')
    for first in (True, False):  # the second run finds everything in place
        result = subprocess.run(['bash', str(other / 'tools' / 'setup_env.sh')], env=env,
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        assert ('[setup_env] creating' in result.stdout) == first, result.stdout
    assert (shared / 'kept').exists() and not (other / '.venv').is_symlink()

    tool = ['tools/train.py', '--help']
    own = osp.join(ROOT, 'stm_mm', '__init__.py')
    assert stm_mm_imported_by(VENV_PY, ROOT, tool) == f'stm_mm from {own}'
    # The other clone's environment does import its decoy, so the check above can fail.
    shutil.copy2(osp.join(ROOT, 'tools', 'train.py'), other / 'tools')
    result = subprocess.run([str(other / '.venv' / 'bin' / 'python'), *tool], cwd=other,
                            capture_output=True, text=True, timeout=300)
    assert "imported the other clone's stm_mm" in result.stderr, result.stderr[-2000:]
