"""How tools/train.py and tools/test.py end on an error: one line, an exit code, no traceback.

:func:`run_cli` runs the tool's function. An exception becomes ``error: <reason>; fix: ...``
on stderr and exit code 2 (bad config, data, checkpoint, launch) or 3 (training stopped);
``--debug`` lets the traceback through.

In a distributed job (``RANK`` or ``SLURM_PROCID`` set) only rank 0 prints, so a problem every rank meets is
reported once (a :class:`LaunchError` is printed by every process: its ``RANK`` may be wrong).
Under torchrun the line also goes into the rank's ``TORCHELASTIC_ERROR_FILE``
(torch.distributed.elastic's format, with the traceback and an ``stm_mm`` entry saying whether
it is a root cause); ``tools/dist_run.py`` (used by dist_train.sh / dist_test.sh) prints the root
cause of the failed job from those files, once, and no rank prints itself
(``STM_MM_DIST_RUN=1``).
"""
import json
import os
import sys
import time
import traceback

from ..errors import DEBUG_HINT, LaunchError, is_known
from ..patches import install
from .launcher import exit_code_of, format_error


def write_error_file(path, line, code, root_cause):
    """Write ``line`` to a torchelastic error file (read by torchrun and tools/dist_run.py)."""
    data = dict(
        message=dict(message=line, extraInfo=dict(py_callstack=traceback.format_exc(),
                                                  timestamp=str(int(time.time())))),
        stm_mm=dict(line=line, exit_code=code, root_cause=root_cause, time=time.time()))
    try:
        with open(path, 'w') as f:
            json.dump(data, f)
    except OSError:
        pass  # reporting must not hide the error itself


def report_error(exc, env=None):
    """Print (rank 0) and record the one-line report of ``exc``; returns the exit code."""
    env = os.environ if env is None else env
    if isinstance(exc, KeyboardInterrupt):
        line, code = 'error: interrupted (a training run continues with --resume)', 130
    else:
        message = format_error(exc)
        line = message if message.startswith('error: ') else f'error: {message}'
        code = exit_code_of(exc)
    if env.get('TORCHELASTIC_ERROR_FILE'):
        # known errors are root causes, not consequences of another rank's failure
        write_error_file(env['TORCHELASTIC_ERROR_FILE'], line, code, is_known(exc))
    # a bad launch environment is reported by every process: its RANK cannot be trusted
    rank = env.get('RANK', env.get('SLURM_PROCID', '0'))
    if (rank == '0' or isinstance(exc, LaunchError)) and \
            env.get('STM_MM_DIST_RUN') != '1':
        print(line, file=sys.stderr)
        if code != 130:
            print(DEBUG_HINT, file=sys.stderr)
    return code


def run_cli(fn, args):
    """``fn(args)`` after :func:`stm_mm.patches.install` (checkpoints are read weights-only);
    errors end the process with :func:`report_error` unless ``args.debug``."""
    install()
    if getattr(args, 'debug', False):
        return fn(args)
    try:
        return fn(args)
    except (Exception, KeyboardInterrupt) as e:  # noqa: B902 - reported as one line
        sys.exit(report_error(e))
