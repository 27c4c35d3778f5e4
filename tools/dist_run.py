"""torchrun that reports a failed job as one line (used by dist_train.sh and dist_test.sh).

    python tools/dist_run.py [torchrun options] SCRIPT [script options]

The ranks do not print their errors (``STM_MM_DIST_RUN=1``, see ``stm_mm/engine/cli.py``);
each writes its one-line report into the error file torchrun gives it. When the job fails, this
prints the root cause once: a report marked as a root cause before one that is a consequence
(a collective broken by the failed rank), the earliest first; a rank that died without a report
(a signal, a crash) is named with its exit status. The exit code is the failed rank's.
torchrun's own ChildFailedError dump and per-rank failure logs are not shown.
"""
import json
import logging
import os
import sys

from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
from torch.distributed.run import get_args_parser, run

from stm_mm.engine.cli import DEBUG_HINT, run_cli
from stm_mm.tool_args import one_line_errors


def _report(failure):
    """``(priority, time, line, exit_code)`` of one ``ProcessFailure``."""
    try:
        with open(failure.error_file) as f:
            ours = json.load(f).get('stm_mm')
    except (OSError, ValueError, TypeError):
        ours = None
    if ours:
        return (0 if ours['root_cause'] else 1, ours['time'], ours['line'], ours['exit_code'])
    message = failure.message if isinstance(failure.message, str) else \
        failure.message.get('message', '')
    code = failure.exitcode if failure.exitcode > 0 else 1
    return (2, float(failure.timestamp), f'error: process failed ({message})', code)


def root_cause(failures):
    """``(rank, line, exit_code)`` of the failure to report, from ``{rank: ProcessFailure}``."""
    rank, (_, _, line, code) = min(((r, _report(f)) for r, f in failures.items()),
                                   key=lambda item: (item[1][0], item[1][1], item[0]))
    return rank, line, code


def launch(args):
    """torchrun ``args``; the ranks stay silent, a failed job is reported here, once."""
    for name in list(logging.root.manager.loggerDict):
        if name.startswith('torch.distributed'):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    os.environ['STM_MM_DIST_RUN'] = '1'  # inherited by the ranks
    try:
        run(args)
    except ChildFailedError as e:
        rank, line, code = root_cause(e.failures)
        print(f'{line}\n(rank {rank} of the job; {DEBUG_HINT[1:]}', file=sys.stderr)
        sys.exit(code)
    finally:  # an error of this process itself is printed by run_cli
        del os.environ['STM_MM_DIST_RUN']


def main(argv=None):
    args = one_line_errors(get_args_parser()).parse_args(sys.argv[1:] if argv is None else argv)
    run_cli(launch, args)


if __name__ == '__main__':
    main()
