"""tools/analysis_tools/gpu_report.sh --dry-run: every step of the GPU report at CPU size (the
Triton kernels interpreted), so the script a GPU session runs is known to work end to end."""
import json
import os
import subprocess

import pytest

from .. import ROOT
from ..helpers.fork_python import python


@pytest.mark.slow
def test_dry_run_writes_every_record(tmp_path):
    env = dict(os.environ, PYTHON=python())
    run = subprocess.run(['bash', 'tools/analysis_tools/gpu_report.sh', '--dry-run',
                          str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    records = {name: json.loads((tmp_path / name).read_text())
               for name in ('triton_resources.json', 'mixers.json', 'dcnv3_op.json',
                            'models_bf16_train.json')}
    mixers = records['mixers.json']
    assert {(r['stm'], r['impl']) for r in mixers} >= {
        ('halo', 'triton'), ('halo', 'sdpa'), ('swin', 'triton'), ('swin', 'sdpa'),
        ('dcnv3', 'triton'), ('dcnv3', 'pytorch')}
    # every implementation of a mixer gives the baseline's output
    assert all(r['max_abs_diff'] < 1e-4 for r in mixers), mixers
    assert len(records['models_bf16_train.json']) == 5
    assert {r['arch'][:5] for r in records['triton_resources.json']} == {'sm_90'}
