"""Only GPU tests (marked `cuda`) may skip: any other skip means a test silently did not run (a
missing fixture, a missing package) and fails the session. STM_MM_ALLOW_SKIPS=1 turns this off.

A plugin object, one per session (tests/conftest.py registers it). Under xdist the controller's
hooks see every worker's reports, deserialised (a skip's longrepr is then a list, not a tuple).
"""
import os

import pytest


class SkipPolicy:

    def __init__(self):
        self.unexpected = []

    @staticmethod
    def allowed():
        return bool(os.environ.get('STM_MM_ALLOW_SKIPS'))

    def pytest_runtest_logreport(self, report):
        if report.skipped and 'cuda' not in report.keywords:
            longrepr = report.longrepr
            reason = longrepr[2] if isinstance(longrepr, (tuple, list)) else longrepr
            self.unexpected.append(f'{report.nodeid}: {reason}')

    def pytest_terminal_summary(self, terminalreporter):
        if self.unexpected and not self.allowed():
            terminalreporter.section('skips that are not GPU tests (fail the run)', red=True)
            for line in self.unexpected:
                terminalreporter.line(line)
            terminalreporter.line('fix: provide what the test needs; only `cuda`-marked tests '
                                  'may skip (STM_MM_ALLOW_SKIPS=1 to allow for a local run)')

    def pytest_sessionfinish(self, session, exitstatus):
        if self.unexpected and not self.allowed() and exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
