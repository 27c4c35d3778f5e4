# The client of tests/helpers/fork_python.py: fork_python writes it, with the two constants below
# filled in and a `#!python -S` line on top, as an executable named `python`. It runs
# `python [-u] [-B] [-s] SCRIPT|-c CODE|-m MODULE ARGS...` in a child forked by the zygote, with
# this process's working directory, environment and open descriptors, and ends as the child
# ended; anything else (and whatever the zygote declines) is exec'd by the real interpreter.
import os
import signal
import socket
import sys
import time

REAL_PYTHON = None
SOCKET = None
FLAGS = {'-u': 'unbuffered', '-B': None, '-s': None}
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
             signal.SIGUSR2)


def real_python():
    os.execv(REAL_PYTHON, [REAL_PYTHON] + sys.argv[1:])


def parse(args):
    unbuffered = False
    while args and args[0] in FLAGS:
        unbuffered = unbuffered or FLAGS[args[0]] == 'unbuffered'
        args = args[1:]
    if not args or args[0] in ('-', '-i') or (args[0].startswith('-')
                                               and args[0] not in ('-c', '-m')):
        return None
    if args[0] in ('-c', '-m') and len(args) < 2:
        return None
    return args, unbuffered


def connect():
    deadline = time.time() + 600
    while not os.path.exists(SOCKET):  # the zygote is still importing
        if time.time() > deadline:
            return None
        time.sleep(0.05)
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(SOCKET)
    except OSError:
        return None
    return conn


def main():
    import json
    numbers = sorted(int(n) for n in os.listdir('/proc/self/fd'))
    numbers = [n for n in numbers if _is_open(n)]
    parsed = parse(sys.argv[1:])
    conn = connect() if parsed else None
    if conn is None:
        real_python()
    argv, unbuffered = parsed
    request = dict(argv=argv, unbuffered=unbuffered, cwd=os.getcwd(), env=dict(os.environ),
                   fds=numbers, pgid=os.getpgrp())
    socket.send_fds(conn, [json.dumps(request).encode() + b'\n'], numbers)
    reader = conn.makefile('r')
    first = reader.readline().split()
    if not first or first[0] == 'exec':
        conn.close()
        real_python()
    pid = int(first[1])

    def forward(sig, frame):
        try:
            os.kill(pid, sig)
        except OSError:
            pass
    for sig in FORWARDED:
        signal.signal(sig, forward)
    how = reader.readline().split()
    if not how:  # the zygote went away
        sys.exit(1)
    if how[0] == 'signal':
        sig = int(how[1])
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):  # SIGKILL, SIGSTOP
            pass
        os.kill(os.getpid(), sig)
    os._exit(int(how[1]))


def _is_open(fd):
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


main()
