"""The tests' fork server (tests/helpers/fork_python.py) behaves as ``python`` does: argument
forms, working directory, environment, descriptors, exit status, death by a signal, tracebacks;
it preloads no code of this repository, and declines (exec's the real interpreter for) runs whose
start-up variables differ."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from . import ROOT
from .helpers.fork_python import python


def run(args, **kwargs):
    kwargs.setdefault('capture_output', True)
    return subprocess.run([python(), *args], text=True, timeout=120, **kwargs)


def forked(proc_env=None):
    """(whether a ``-c`` run was forked by the zygote, its ``sys.executable``): an exec'd run
    is the client's own process."""
    code = 'import os, sys; print(os.getpid(), sys.executable)'
    client = subprocess.Popen([python(), '-c', code], stdout=subprocess.PIPE, text=True,
                              env=proc_env)
    out, _ = client.communicate(timeout=120)
    pid, executable = out.split()
    return int(pid) != client.pid, executable


def test_argument_forms_cwd_and_exit_status(tmp_path):
    script = tmp_path / 'tool.py'
    script.write_text(textwrap.dedent("""
        import os, sys
        print(sys.argv, os.getcwd(), sys.path[0], __name__)
        sys.exit(int(sys.argv[1]))
    """))
    proc = run([str(script), '7', 'x y'], cwd=str(tmp_path))
    assert proc.returncode == 7
    assert proc.stdout.strip() == f"{[str(script), '7', 'x y']} {tmp_path} {tmp_path} __main__"
    proc = run(['-u', '-c', 'import sys; print(sys.argv); sys.exit("bad")', 'a'])
    assert (proc.returncode, proc.stdout, proc.stderr) == (1, "['-c', 'a']\n", 'bad\n')
    proc = run(['-m', 'json.tool'], input='{"a": 1}')
    assert proc.returncode == 0 and proc.stdout == '{\n    "a": 1\n}\n'


def test_environment_descriptors_and_traceback(tmp_path):
    read, write = os.pipe()
    code = 'import os, sys; os.write(int(sys.argv[1]), os.environ["STM_X"].encode()); 1 / 0'
    proc = subprocess.run([python(), '-c', code, str(write)], pass_fds=(write, ),
                          env=dict(os.environ, STM_X='through the pipe'), capture_output=True,
                          text=True, timeout=120)
    os.close(write)
    with os.fdopen(read) as f:
        assert f.read() == 'through the pipe'
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        'Traceback (most recent call last):', '  File "<string>", line 1, in <module>',
        'ZeroDivisionError: division by zero']


def test_death_by_signal_and_forwarded_signals():
    assert run(['-c', 'import os; os.kill(os.getpid(), 9)']).returncode == -signal.SIGKILL
    client = subprocess.Popen(
        [python(), '-c', 'import signal, sys, time\n'
         'signal.signal(signal.SIGTERM, lambda *a: sys.exit(5))\nprint("ready", flush=True)\n'
         'time.sleep(60)'], stdout=subprocess.PIPE, text=True)
    assert client.stdout.readline() == 'ready\n'
    client.send_signal(signal.SIGTERM)
    assert client.wait(timeout=60) == 5


def test_killed_client_takes_its_run_along(tmp_path):
    marker = tmp_path / 'survived'
    client = subprocess.Popen([python(), '-c', f'import time\nprint("ready", flush=True)\n'
                               f'time.sleep(3)\nopen({str(marker)!r}, "w")'],
                              stdout=subprocess.PIPE, text=True)
    assert client.stdout.readline() == 'ready\n'
    client.kill()
    client.wait()
    time.sleep(4)
    assert not marker.exists()


def test_third_party_preloaded_repository_code_not():
    proc = run(['-c', 'import sys; print("torch" in sys.modules, "mmdet.models" in sys.modules, '
                '"stm_mm" in sys.modules)'], cwd=ROOT)
    assert proc.stdout == 'True True False\n', proc.stderr


def test_start_variables_make_a_real_interpreter():
    assert forked() == (True, python())
    env = dict(os.environ, MALLOC_ARENA_MAX='1')
    assert forked(env) == (False, sys.executable)
    # applied in the child: no reason to decline
    assert forked(dict(os.environ, OMP_NUM_THREADS='3', PYTHON='x'))[0]
    proc = run(['-c', 'import torch; print(torch.get_num_threads())'],
               env=dict(os.environ, OMP_NUM_THREADS='3'))
    assert proc.stdout == '3\n'


@pytest.mark.parametrize('args', [['-I', '-c', 'pass'], ['-X', 'importtime', '-c', 'pass']])
def test_other_interpreter_options_run_the_real_interpreter(args):
    proc = run([*args[:-2], '-c', 'import sys; print(sys.flags.isolated, sys.executable)'])
    assert proc.returncode == 0 and proc.stdout.split()[1] == sys.executable
