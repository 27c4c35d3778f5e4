"""The one-line report of a failed rank (stm_mm/engine/cli.py) and the choice of the root cause
among the failed ranks of a torchrun job (tools/dist_run.py), in-process."""
import json
import os.path as osp
import time

from torch.distributed.elastic.multiprocessing.errors import ProcessFailure

from stm_mm.engine.cli import report_error
from stm_mm.errors import UnreadableImageError

from ..helpers.tiny_training import ROOT, load_tool


def _report(tmp_path, exc, rank):
    path = str(tmp_path / f'error_{rank}.json')
    try:
        raise exc
    except type(exc) as e:
        code = report_error(e, env=dict(RANK=str(rank), TORCHELASTIC_ERROR_FILE=path,
                                        STM_MM_DIST_RUN='1'))
    return path, code


def test_ranks_write_their_report_and_stay_silent(tmp_path, capsys):
    bad = UnreadableImageError.of('/d/x.png', 'empty file (0 bytes)')
    path, code = _report(tmp_path, bad, 1)
    assert code == 2 and capsys.readouterr().err == ''
    with open(path) as f:
        data = json.load(f)
    line = ('error: image /d/x.png cannot be decoded: empty file (0 bytes); fix: replace or '
            'delete the file, or pass --skip-invalid to skip unreadable images (listed in '
            'work_dir/skipped_images.txt)')
    assert data['message']['message'] == line  # what torchrun's own summary would show
    assert 'UnreadableImageError' in data['message']['extraInfo']['py_callstack']
    assert data['stm_mm']['root_cause'] is True and data['stm_mm']['line'] == line
    # without dist_run.py (plain torchrun), rank 0 prints and the others do not
    for rank, printed in ((0, True), (1, False)):
        report_error(bad, env=dict(RANK=str(rank)))
        assert (line in capsys.readouterr().err) is printed


def test_dist_run_reports_the_root_cause(tmp_path):
    """Rank 0 failed first, but only because rank 1's data error broke the collective."""
    dist_run = load_tool(osp.join(ROOT, 'tools', 'dist_run.py'))
    broken, _ = _report(tmp_path, RuntimeError('[gloo] Connection closed by peer'), 0)
    time.sleep(0.01)
    cause, _ = _report(tmp_path, UnreadableImageError.of('/d/x.png', 'truncated PNG'), 1)
    failures = {0: ProcessFailure(0, 100, 1, broken), 1: ProcessFailure(1, 101, 2, cause),
                2: ProcessFailure(2, 102, -15, str(tmp_path / 'none.json'))}
    rank, line, code = dist_run.root_cause(failures)
    assert (rank, code) == (1, 2)
    assert line.startswith('error: image /d/x.png cannot be decoded: truncated PNG; fix: ')
    # a rank killed without a report: named with its signal
    rank, line, code = dist_run.root_cause({2: failures[2]})
    assert (rank, line, code) == (2, 'error: process failed (Signal 15 (SIGTERM) received by '
                                     'PID 102)', 1)


def test_one_error_prefix(capsys):
    """A message that already starts with ``error:`` is not prefixed again; known errors are
    reported without their type, others with it."""
    from stm_mm.errors import NonFiniteLossError
    for exc, line in ((ValueError('error: bad value; fix: x'), 'error: bad value; fix: x'),
                      (NonFiniteLossError('non-finite loss'), 'error: non-finite loss'),
                      (RuntimeError('boom'), 'error: RuntimeError: boom')):
        report_error(exc, env=dict(RANK='0'))
        assert capsys.readouterr().err.splitlines()[0] == line
