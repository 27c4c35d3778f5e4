"""The zygote of tests/helpers/fork_python.py: ``fork_server.py SOCKET CLIENT PRELOAD PREFIXES
APPLIED``.

Imports the PRELOAD modules, then listens on the unix socket SOCKET. Each connection is one run
from the client script (fork_client.py): a JSON request (argv after the interpreter, working
directory, environment, the numbers of the descriptors sent along) with the client's open file
descriptors attached. A handler process (forked per connection) answers ``exec`` when the run
must go to the real interpreter, else forks the run's child, sends its pid, and sends how it
ended (``exit CODE`` or ``signal N``); when the client goes away first (killed), it kills the
child.
"""
import ctypes
import importlib
import json
import os
import selectors
import signal
import socket
import sys
import time

MAX_FDS = 250


def main(socket_path, client, preload, prefixes, applied):
    _die_with_parent()
    start_env = dict(os.environ)
    for name in filter(None, preload.split(',')):
        try:
            importlib.import_module(name)
        except ImportError:  # an optional package this environment lacks
            pass
    # what the imports set (cv2 and inductor set a few variables): the children get it too
    import_env = {k: v for k, v in os.environ.items() if start_env.get(k) != v}
    # the interpreter's own path entries, without the zygote's '' and PYTHONPATH entries
    pythonpath = [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]
    base_path = [p for p in sys.path[1:] if p not in pythonpath]
    if 'torch' in sys.modules and not sys.modules['torch'].cuda.device_count():
        applied += ',CUDA_VISIBLE_DEVICES'  # no GPU to hide (the count does not initialise CUDA)
    context = dict(start_env=start_env, import_env=import_env, base_path=base_path, client=client,
                   prefixes=tuple(filter(None, prefixes.split(','))),
                   applied=tuple(filter(None, applied.split(','))))
    context['applied_prefixes'] = tuple(a for a in context['applied'] if a.endswith('_'))
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path + '.tmp')
    os.rename(socket_path + '.tmp', socket_path)  # clients wait for the name
    listener.listen(64)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # handlers are reaped by the kernel
    sys.stdout.flush()
    sys.stderr.flush()
    while True:
        conn, _ = listener.accept()
        if os.fork() == 0:
            listener.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            code = 1
            try:
                _handle(conn, context)
                code = 0
            finally:
                os._exit(code)
        conn.close()


def _die_with_parent():
    """The zygote ends with the test process that started it (Linux: PR_SET_PDEATHSIG)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
    if os.getppid() == 1:
        os._exit(0)


def _needs_exec(env, context):
    """The first variable read at the start whose value in ``env`` the zygote did not start
    with (or its imports did not set), else None."""
    start, imported, applied = context['start_env'], context['import_env'], context['applied']
    for name in set(env) | set(start):
        if name == 'MKL_NUM_THREADS' and env.get(name) == env.get('OMP_NUM_THREADS'):
            continue  # torch.set_num_threads in the child sets MKL's count too
        if (name.startswith(context['prefixes']) and name not in applied
                and not name.startswith(context['applied_prefixes'])
                and env.get(name) != start.get(name)
                and (name not in imported or env.get(name) != imported[name])):
            return name
    return None


def _handle(conn, context):
    message, fds, _, _ = socket.recv_fds(conn, 1 << 20, MAX_FDS)
    while not message.endswith(b'\n'):
        chunk = conn.recv(1 << 20)
        if not chunk:
            return
        message += chunk
    request = json.loads(message)
    what = ' '.join(request['argv'][:2])[:150]
    reason = _needs_exec(request['env'], context)
    if reason:
        _log(f'exec ({reason} differs): {what}')
        conn.sendall(f'exec {reason}\n'.encode())
        return
    start = time.time()
    pid = os.fork()
    if pid == 0:
        conn.close()
        _run_child(request, fds, context)  # never returns
    for fd in fds:
        os.close(fd)
    conn.sendall(f'pid {pid}\n'.encode())
    pidfd = os.pidfd_open(pid)
    with selectors.DefaultSelector() as selector:
        selector.register(pidfd, selectors.EVENT_READ)
        selector.register(conn, selectors.EVENT_READ)
        while True:
            ready = [key.fileobj for key, _ in selector.select()]
            if pidfd in ready:
                break
            if conn in ready and not conn.recv(1):  # the client is gone: so is its run
                os.kill(pid, signal.SIGKILL)
                break
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        reply = f'signal {os.WTERMSIG(status)}\n'
    else:
        reply = f'exit {os.WEXITSTATUS(status)}\n'
    _log(f'fork {pid}: {what}: {reply.strip()} after {time.time() - start:.1f} s')
    try:
        conn.sendall(reply.encode())
    except OSError:
        pass


def _log(line):
    """One line of zygote.log, the run log of this zygote (beside its client script)."""
    print(line, flush=True)


def _place_descriptors(numbers, fds):
    """Give the received descriptors the numbers they had in the client."""
    import fcntl
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 1000) for fd in fds]
    for fd in fds:
        os.close(fd)
    for number, fd in zip(numbers, high):
        os.dup2(fd, number)  # inheritable, as every descriptor a process starts with
        os.close(fd)


def _run_child(request, fds, context):
    code = 1
    try:
        try:
            os.setpgid(0, request['pgid'])  # in the client's process group, as its child would be
        except OSError:
            pass
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        _place_descriptors(request['fds'], fds)
        os.chdir(request['cwd'])
        env = dict(request['env'])
        for name, value in context['import_env'].items():
            if env.get(name) == context['start_env'].get(name):
                env[name] = value
        os.environ.clear()
        os.environ.update(env)
        _reseed()
        _apply_threads(env)
        sys.executable = context['client']
        code = _run(request['argv'], request['unbuffered'], env, context)
    except BaseException:  # noqa: B902  (the child reports and exits like an interpreter)
        import traceback
        traceback.print_exc()
        code = 1
    finally:
        _finish(code)


def _reseed():
    import random
    random.seed()
    if 'numpy' in sys.modules:
        sys.modules['numpy'].random.seed()


def _apply_threads(env):
    if 'torch' in sys.modules:
        torch = sys.modules['torch']
        threads = env.get('OMP_NUM_THREADS', '')
        torch.set_num_threads(int(threads) if threads.isdigit() and int(threads) > 0
                              else len(os.sched_getaffinity(0)))


def _run(argv, unbuffered, env, context):
    """Run ``argv`` (what follows ``python``) as ``__main__``; the exit code."""
    import runpy
    pythonpath = [p for p in env.get('PYTHONPATH', '').split(os.pathsep) if p]
    sys.stdout.reconfigure(line_buffering=os.isatty(1))
    if unbuffered or env.get('PYTHONUNBUFFERED'):
        sys.stdout.reconfigure(write_through=True)
        sys.stderr.reconfigure(write_through=True)
    try:
        if argv[0] == '-c':
            sys.argv = ['-c'] + argv[2:]
            sys.path[:] = [''] + pythonpath + context['base_path']
            import types
            main = types.ModuleType('__main__')
            main.__dict__['__builtins__'] = __builtins__
            sys.modules['__main__'] = main
            exec(compile(argv[1], '<string>', 'exec'), main.__dict__)
        elif argv[0] == '-m':
            sys.argv = [argv[1]] + argv[2:]  # runpy puts the module's path in argv[0]
            sys.path[:] = [os.getcwd()] + pythonpath + context['base_path']
            runpy.run_module(argv[1], run_name='__main__', alter_sys=True)
        else:
            sys.argv = list(argv)
            script = os.path.realpath(argv[0])
            sys.path[:] = [os.path.dirname(script)] + pythonpath + context['base_path']
            runpy.run_path(argv[0], run_name='__main__')
    except SystemExit as e:
        return _exit_code(e.code)
    except BaseException:  # noqa: B902
        kind, error, tb = sys.exc_info()
        while tb is not None and tb.tb_frame.f_code.co_filename in (__file__, runpy.__file__,
                                                                   '<frozen runpy>'):
            tb = tb.tb_next  # the traceback starts in the run's code, as the interpreter's
        sys.excepthook(kind, error.with_traceback(tb), tb)
        return 1
    return 0


def _exit_code(value):
    if value is None:
        return 0
    if isinstance(value, int):
        return value & 0xff
    print(value, file=sys.stderr)
    return 1


def _finish(code):
    """Python's own shutdown, then exit: non-daemon threads joined, atexit handlers, flushes."""
    try:
        import threading
        threading._shutdown()
    except BaseException:  # noqa: B902
        pass
    try:
        import atexit
        atexit._run_exitfuncs()
    except BaseException:  # noqa: B902
        pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: B902
            pass
    os._exit(code)


if __name__ == '__main__':
    main(*sys.argv[1:])
