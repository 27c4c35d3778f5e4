"""Every tool in tools/ reports a bad argument as one line ``error: ...`` with exit code 2 and
runs through ``stm_mm.engine.cli.run_cli`` (a new tool without it fails here)."""
import glob
import os
import os.path as osp

import pytest

from stm_mm.engine.cli import run_cli
from stm_mm.tool_args import ToolArgumentParser, add_input_size
from tests.helpers.tiny_training import ROOT, load_tool

TOOLS = sorted(osp.relpath(p, ROOT) for p in glob.glob(osp.join(ROOT, 'tools', '**', '*.py'),
                                                       recursive=True))


@pytest.mark.parametrize('tool', TOOLS)
def test_bad_argument_is_one_error_line(tool, capsys, monkeypatch):
    monkeypatch.syspath_prepend(osp.join(ROOT, osp.dirname(tool)))  # det_image_demo's import
    # benchmark_onnx.py sets the OpenMP wait policy when imported
    monkeypatch.setenv('OMP_WAIT_POLICY', os.environ.get('OMP_WAIT_POLICY', 'PASSIVE'))
    module = load_tool(osp.join(ROOT, tool))
    assert module.run_cli is run_cli, f'{tool}: main must run through run_cli'
    with pytest.raises(SystemExit) as info:
        module.main(['--no-such-option'])
    err = capsys.readouterr().err
    assert info.value.code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith('error: '), err


@pytest.mark.parametrize('argv, size', [([], (224, 224)), (['--input-size', '64'], (64, 64)),
                                        (['--input-size', '64', '80'], (64, 80))])
def test_input_size_one_value_is_square(argv, size):
    parser = ToolArgumentParser()
    add_input_size(parser)
    assert parser.parse_args(argv).input_size == size


@pytest.mark.parametrize('argv, message', [
    (['--input-size', '1', '2', '3'], '--input-size takes H or H W, got 3 values'),
    (['--input-size', '0'], '--input-size must be positive, got [0]')])
def test_input_size_errors(argv, message, capsys):
    parser = ToolArgumentParser(prog='tool.py')
    add_input_size(parser)
    with pytest.raises(SystemExit) as info:
        parser.parse_args(argv)
    assert info.value.code == 2
    assert capsys.readouterr().err == f'error: {message}; fix: see tool.py --help\n'
