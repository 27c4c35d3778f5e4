"""tools/analysis_tools/benchmark.py runs end to end on one small configuration (no timing check)."""
import json
import os
import subprocess

from .. import ROOT
from ..helpers.fork_python import python



def test_benchmark_tool_reference_and_sizes(tmp_path):
    out = tmp_path / 'bench.json'
    cmd = [python(), 'tools/analysis_tools/benchmark.py',
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


def test_benchmark_tool_utilisation_and_cfg_options(tmp_path):
    """--utilisation/--mlp records (FLOPs from the MAC counter) on a detection backbone with
    --cfg-options model.backbone.with_cp=True."""
    out = tmp_path / 'bench.json'
    cmd = [python(), 'tools/analysis_tools/benchmark.py',
           'configs/det/u_dwconv_micro_maskrcnn.py', '--batch-size', '1', '--input-size', '64',
           '96', '--train', '--utilisation', '--mlp', '--peak-tflops', '1', '--warmup', '1',
           '--iters', '1', '--device', 'cpu', '--json', str(out), '--cfg-options',
           'model.backbone.with_cp=True']
    env = dict(os.environ, PYTHONPATH=ROOT)
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    (record, ) = json.loads(out.read_text())
    assert 'TFLOP/s achieved' in result.stdout

    from stm_mm.analysis.complexity import complexity
    from stm_mm.models import UnifiedBackbone
    backbone = UnifiedBackbone('dwconv', 'micro', out_indices=(0, 1, 2, 3),
                               norm_placement='output')
    macs = complexity(backbone, (1, 3, 64, 96))['total']
    assert abs(record['gflops_per_image'] - 6 * macs / 1e9) < 1e-9  # 2 FLOPs/MAC, x3 training
    assert abs(record['utilisation'] - record['tflops']) < 1e-12  # peak of 1 TFLOP/s
    dims = (32, 64, 128, 256)
    assert [(r['stage'], r['tokens'], r['dim']) for r in record['mlp']] == [
        (i, (64 // 2**(i + 2)) * (96 // 2**(i + 2)), dims[i]) for i in range(4)]
    assert all(r['tflops'] > 0 for r in record['mlp'])


def test_keep_freed_cpu_memory_on_glibc():
    """Large buffers come from the heap afterwards: once the heap has grown, a new 64 MiB tensor
    faults no new pages (through mmap, every one faults all of its 16384)."""
    import platform

    import pytest
    if platform.system() != 'Linux' or platform.libc_ver()[0] != 'glibc':
        pytest.skip('glibc only')
    script = ('import resource, torch\n'
              'from stm_mm.analysis.benchmark import keep_freed_cpu_memory\n'
              'assert keep_freed_cpu_memory()\n'
              'for _ in range(3):\n'
              '    torch.ones(16 * 2**20)\n'
              'before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n'
              'torch.ones(16 * 2**20)\n'
              'print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)\n')
    env = dict(os.environ, PYTHONPATH=ROOT)
    result = subprocess.run([python(), '-c', script], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert int(result.stdout.split()[-1]) < 1000


def test_benchmark_tool_train_profile(tmp_path):
    """--train --profile: the record says mode train and holds both passes' top ops and
    category shares, which add up to the pass's self time."""
    out = tmp_path / 'bench.json'
    cmd = [python(), 'tools/analysis_tools/benchmark.py',
           'configs/_base_/models/u_halo_micro.py', '--batch-size', '2', '--input-size', '32',
           '32', '--train', '--profile', '--warmup', '0', '--iters', '1', '--device', 'cpu',
           '--json', str(out)]
    env = dict(os.environ, PYTHONPATH=ROOT)
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    (record, ) = json.loads(out.read_text())
    assert record['mode'] == 'train' and record['compile'] is False
    for phase in ('forward', 'backward'):
        summary = record['profile'][phase]
        shares = {c: v['share'] for c, v in summary['categories'].items()}
        assert abs(sum(shares.values()) - 1) < 1e-6
        for category in ('attention', 'position bias and masks', 'MLP matmuls', 'norms'):
            assert shares[category] > 0, (phase, category)
        assert summary['top_ops'][0]['self_ms'] >= summary['top_ops'][-1]['self_ms']
