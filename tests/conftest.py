import os
import sys

import pytest
import torch

# Without a GPU the Triton kernels run under Triton's CPU interpreter, which must be switched on
# before any kernel module is imported (stm_mm.ops.triton).
if not torch.cuda.is_available():
    os.environ.setdefault('TRITON_INTERPRET', '1')

# Only GPU tests (marked `cuda`) may skip: any other skip means a test silently did not run (a
# missing fixture, a missing package) and fails the session. STM_MM_ALLOW_SKIPS=1 turns this off.
_unexpected_skips = []


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    """Forget what torch.compile saw in earlier tests: Dynamo recompiles a function it met at
    other shapes with dynamic shapes, which made a later small compile test take ~19 minutes
    in Inductor's symbolic simplification instead of ~1."""
    yield
    if 'torch._dynamo' in sys.modules:
        torch._dynamo.reset()


def pytest_runtest_logreport(report):
    if report.skipped and 'cuda' not in report.keywords:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        _unexpected_skips.append(f'{report.nodeid}: {reason}')


def pytest_terminal_summary(terminalreporter):
    if _unexpected_skips and not os.environ.get('STM_MM_ALLOW_SKIPS'):
        terminalreporter.section('skips that are not GPU tests (fail the run)', red=True)
        for line in _unexpected_skips:
            terminalreporter.line(line)
        terminalreporter.line('fix: provide what the test needs; only `cuda`-marked tests may '
                              'skip (STM_MM_ALLOW_SKIPS=1 to allow for a local run)')


def pytest_sessionfinish(session, exitstatus):
    if (_unexpected_skips and not os.environ.get('STM_MM_ALLOW_SKIPS')
            and exitstatus == pytest.ExitCode.OK):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
