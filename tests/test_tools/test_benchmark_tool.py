"""tools/analysis_tools/benchmark.py runs end to end on one small configuration (no timing check)."""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_benchmark_tool_reference_and_sizes(tmp_path):
    out = tmp_path / 'bench.json'
    cmd = [sys.executable, 'tools/analysis_tools/benchmark.py',
           'configs/_base_/models/u_swin_micro.py', '--batch-size', '2', '--sizes', '64', '96',
           '--reference', '--warmup', '1', '--iters', '2', '--device', 'cpu', '--json', str(out)]
    env = dict(os.environ, PYTHONPATH=ROOT)
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'equal at rtol 1e-4' in result.stdout
    records = json.loads(out.read_text())
    assert [(r['impl'], r['input_size']) for r in records] == [
        ('fast', [64, 64]), ('reference', [64, 64]), ('fast', [96, 96]), ('reference', [96, 96])]
    for r in records:
        assert r['images_per_s'] > 0 and r['peak_mem_mb'] > 0
        assert set(r) >= {'config', 'impl', 'batch_size', 'input_size', 'images_per_s',
                          'peak_mem_mb'}
