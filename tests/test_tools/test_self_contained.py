"""The repository stands on its own: vendored facts, no path outside it, no silent skips."""
import os
import os.path as osp
from types import SimpleNamespace

import pytest

from .. import ROOT
from ..official_keys import OFFICIAL_NAME, official_keys
from ..skip_policy import SkipPolicy

SKIP_DIRS = {'.git', '.venv', 'work_dirs', 'data', '__pycache__', 'build', 'dist'}


def test_vendored_official_keys_cover_all_models():
    for stm in OFFICIAL_NAME:
        for scale in ('micro', 'tiny', 'small', 'base'):
            keys = official_keys(stm, scale)
            assert keys['head.weight'] == (1000, keys['head.weight'][1])
            assert keys['downsample_layers.0.stem.0.weight'][1:] == (3, 3, 3)


def test_no_reference_to_the_development_shelf():
    """Users' clones have no development shelf beside them: no file may point there."""
    needles = ('../' + 'shared', 'shared/' + 'spec')
    found = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.endswith('.egg-info')]
        for name in files:
            path = osp.join(folder, name)
            try:
                with open(path, encoding='utf-8') as f:
                    text = f.read()
            except (UnicodeDecodeError, OSError):
                continue
            found += [f'{osp.relpath(path, ROOT)}: {n}' for n in needles if n in text]
    assert not found


def _skip(name, reason, *markers):
    keywords = {name: 1, 'test_case.py': 1, **{m: 1 for m in markers}}
    return pytest.TestReport(f'test_case.py::{name}', ('test_case.py', 3, name), keywords,
                             'skipped', ('test_case.py', 3, f'Skipped: {reason}'), 'setup')


class _Terminal:
    def __init__(self):
        self.lines = []

    def section(self, title, **markup):
        self.lines.append(title)

    def line(self, text):
        self.lines.append(text)


def _finish(policy, reports, config=None):
    """Feed ``reports`` to the policy as pytest (or, with ``config``, xdist's controller after
    the worker's serialisation) would; the session's exit status and summary lines."""
    for report in reports:
        if config is not None:
            data = config.hook.pytest_report_to_serializable(config=config, report=report)
            report = config.hook.pytest_report_from_serializable(config=config, data=data)
        policy.pytest_runtest_logreport(report)
    session, terminal = SimpleNamespace(exitstatus=pytest.ExitCode.OK), _Terminal()
    policy.pytest_terminal_summary(terminal)
    policy.pytest_sessionfinish(session, pytest.ExitCode.OK)
    return session.exitstatus, terminal.lines


@pytest.mark.parametrize('from_worker', [False, True], ids=['in_process', 'xdist_worker'])
def test_only_gpu_tests_may_skip(monkeypatch, pytestconfig, from_worker):
    monkeypatch.delenv('STM_MM_ALLOW_SKIPS', raising=False)
    config = pytestconfig if from_worker else None
    gpu = _skip('test_gpu', 'no GPU', 'cuda')
    assert _finish(SkipPolicy(), [gpu], config) == (pytest.ExitCode.OK, [])

    status, lines = _finish(SkipPolicy(), [gpu, _skip('test_needs_fixture',
                                                      'fixture folder missing')], config)
    assert status == pytest.ExitCode.TESTS_FAILED
    assert 'test_case.py::test_needs_fixture: Skipped: fixture folder missing' in lines
    assert not any('test_gpu' in line for line in lines)

    monkeypatch.setenv('STM_MM_ALLOW_SKIPS', '1')
    assert _finish(SkipPolicy(), [gpu, _skip('test_needs_fixture', 'fixture folder missing')],
                   config)[0] == pytest.ExitCode.OK


def test_the_policy_is_this_sessions_plugin(pytestconfig):
    assert isinstance(pytestconfig.pluginmanager.get_plugin('stm_mm_skip_policy'), SkipPolicy)
