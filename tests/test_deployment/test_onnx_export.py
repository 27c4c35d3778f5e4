"""ONNX export (TorchScript exporter) checked with onnxruntime on CPU.

The export-safe pieces are compared with the models' own code in PyTorch; exported graphs with
PyTorch's normal (fast) paths at the traced size and, for dynamic graphs, at a second size
whose Python-level decisions differ (padding, Swin's shift, PVT's table resize).
"""
import importlib.util
import json
import os

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from stm_mm.analysis.loaded_model import load_model
from stm_mm.deployment import export_onnx, exportable, onnx_session, verify_onnx
from stm_mm.deployment.symbolic import dynamic_symbolics
from stm_mm.models import STM_NAMES, UnifiedBackbone
from stm_mm.models.mixers import ShiftedWindowAttention
from stm_mm.models.utils import window_partition
from stm_mm.models.utils import windows as model_windows
from stm_mm.models.utils.windows import traced_shifted_window_order as shifted_window_order
from stm_mm.models.utils.windows import traced_swin_shift_mask as swin_shift_mask
from stm_mm.ops.impl_switch import forced_impls

from .. import ROOT

ATOL = 1e-4
TINY = dict(base='micro', depths=(1, 2, 1, 2))  # odd blocks in two stages: shifted Swin blocks


@pytest.mark.parametrize('size', [(14, 14), (14, 21), (7, 7), (21, 7)])
@pytest.mark.parametrize('shift', [0, 3])
def test_shift_geometry_matches_the_models(size, shift):
    Hp, Wp = size
    order, inverse = shifted_window_order(Hp, Wp, 7, torch.tensor(shift))
    mask = swin_shift_mask(Hp, Wp, 7, torch.tensor(shift))
    if shift:
        ref_order, ref_inverse = model_windows.shifted_window_order(Hp, Wp, 7, shift, 'cpu')
        ref_mask = model_windows.swin_shift_mask(Hp, Wp, 7, shift, 'cpu')
    else:  # plain windows: partition order, no mask
        tokens = torch.arange(Hp * Wp).view(1, Hp, Wp, 1)
        ref_order = window_partition(tokens, 7).reshape(-1)
        ref_inverse = torch.argsort(ref_order)
        ref_mask = torch.zeros(Hp * Wp // 49, 49, 49)
    assert torch.equal(order, ref_order)
    assert torch.equal(inverse, ref_inverse)
    assert torch.equal(mask, ref_mask)


@pytest.mark.parametrize('size', [(7, 7), (5, 9), (9, 12), (14, 14)])
@pytest.mark.parametrize('single', [False, True])
def test_swin_export_forward_matches_the_mixer(size, single):
    mixer = ShiftedWindowAttention(32, 2, block_index=1, shift_single_window=single).eval()
    torch.nn.init.normal_(mixer.relative_position_bias_table)
    x = torch.randn(2, *size, 32)
    with torch.no_grad(), forced_impls(swin='export'):
        exported = mixer(x)
    with torch.no_grad():
        assert_close(exported, mixer(x), rtol=1e-5, atol=1e-5)


def test_unfold_exports_with_dynamic_sizes(tmp_path):
    """Halo's overlapping windows (x.unfold) as one Gather: exact at every size."""
    class Windows(torch.nn.Module):
        def forward(self, x):
            x = torch.nn.functional.pad(x, (0, 0, 3, 3, 3, 3))
            return x.unfold(1, 13, 7).unfold(2, 13, 7)

    path = tmp_path / 'unfold.onnx'
    with dynamic_symbolics(17):
        torch.onnx.export(Windows(), (torch.randn(1, 14, 21, 3), ), path, dynamo=False,
                          opset_version=17, input_names=['input'], output_names=['windows'],
                          dynamic_axes={'input': {0: 'b', 1: 'h', 2: 'w'},
                                        'windows': {0: 'b', 1: 'nh', 2: 'nw'}})
    session = onnx_session(path)
    for shape in [(1, 14, 21, 3), (2, 28, 7, 3), (1, 7, 35, 3)]:
        x = torch.randn(shape)
        expected = Windows()(x).numpy()
        np.testing.assert_array_equal(session.run(None, {'input': x.numpy()})[0], expected)


def check(module, names, path, trace_shape, second_shape=None):
    """Export (dynamic when a second shape is given) and compare with PyTorch; the outputs must
    be large enough (> 1) for the tolerance to mean something."""
    export_onnx(module, path, names, trace_shape, dynamic=second_shape is not None)
    shapes = [trace_shape] + ([second_shape] if second_shape else [])
    results = verify_onnx(module, path, shapes)
    assert [shape for shape, _, _ in results] == [tuple(s) for s in shapes]
    for shape, diff, scale in results:
        assert scale > 1, (shape, scale)
        assert diff <= ATOL, (shape, diff)


@pytest.mark.parametrize('stm', STM_NAMES)
def test_tiny_backbone_dynamic_export(stm, tmp_path):
    """Traced at 56 (no padding in stages 0-1, PVT's table at its own size), checked at 75x90
    (padding everywhere, a resized table, Swin shifts where the traced size did not)."""
    model = UnifiedBackbone(stm, TINY, img_size=56, layer_scale_init_value=1.0,
                            out_indices=(0, 1, 2, 3)).eval()
    names = [f'feat{i}' for i in range(4)]
    check(model, names, tmp_path / 'tiny.onnx', (1, 3, 56, 56), (2, 3, 75, 90))


def micro_classifier(stm):
    """The micro classifier of the config with weights that make every branch count: layer
    scales 1 (instead of 1e-6) and a head scaled to logits of order 10."""
    loaded = load_model(os.path.join(ROOT, f'configs/cls/u_{stm}_micro_in1k.py'))
    with torch.no_grad():
        for name, param in loaded.model.named_parameters():
            if name.rsplit('.', 1)[-1].startswith('gamma'):
                param.fill_(1.0)
        loaded.model.head.fc.weight.mul_(100)
    return loaded


HEAVY = ('halo', 'swin', 'dcnv3')  # the slowest exports on a 2-core machine


@pytest.mark.parametrize('stm', [
    pytest.param(stm, marks=pytest.mark.slow) if stm in HEAVY else stm for stm in STM_NAMES])
def test_micro_classifier_fixed_and_dynamic(stm, tmp_path):
    module, names = exportable(micro_classifier(stm), 'model')
    assert names == ['logits']
    check(module, names, tmp_path / 'fixed.onnx', (1, 3, 112, 112))
    check(module, names, tmp_path / 'dynamic.onnx', (1, 3, 112, 112), (2, 3, 144, 176))


@pytest.mark.slow
def test_detection_backbone_dynamic(tmp_path):
    """The Swin Mask R-CNN backbone (shifts in every stage, four output norms)."""
    loaded = load_model(os.path.join(ROOT, 'configs/det/u_swin_micro_maskrcnn.py'))
    with torch.no_grad():
        for name, param in loaded.backbone.named_parameters():
            if name.rsplit('.', 1)[-1].startswith('gamma'):
                param.fill_(1.0)
    module, names = exportable(loaded, 'backbone')
    assert names == ['feat0', 'feat1', 'feat2', 'feat3']
    check(module, names, tmp_path / 'det.onnx', (1, 3, 96, 128), (2, 3, 120, 100))


def load_tool():
    path = os.path.join(ROOT, 'tools/deployment/pytorch2onnx.py')
    spec = importlib.util.spec_from_file_location('pytorch2onnx', path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def test_tool_exports_and_verifies(tmp_path, capsys):
    out = tmp_path / 'm.onnx'
    code = load_tool().main([os.path.join(ROOT, 'configs/cls/u_dwconv_micro_in1k.py'),
                             '--out', str(out), '--input-size', '64', '80', '--dynamic', '--verify'])
    stdout = capsys.readouterr().out
    assert code == 0, stdout
    assert 'verify (1, 3, 64, 80)' in stdout and 'verify (2, 3, 96, 144)' in stdout
    assert 'verified: onnxruntime matches PyTorch within 1e-04' in stdout
    assert out.stat().st_size > 1e6


@pytest.mark.parametrize('argv, message', [
    (['configs/cls/u_dwconv_micro_in1k.py', '--opset', '13'],
     'error: --opset 13 is not supported; fix: use 16..20'),
    (['configs/det/u_dwconv_micro_maskrcnn.py', '--part', 'model'],
     'error: the full Mask R-CNN does not export'),
])
def test_tool_errors_are_one_line(argv, message, tmp_path, capsys):
    argv = [os.path.join(ROOT, argv[0]), '--out', str(tmp_path / 'm.onnx')] + argv[1:]
    with pytest.raises(SystemExit) as exit_info:
        load_tool().main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err  # (library warnings may come first, outside pytest)
    errors = [line for line in err.splitlines() if line.startswith('error:')]
    assert len(errors) == 1 and errors[0].startswith(message), err
    assert 'Traceback' not in err and not (tmp_path / 'm.onnx').exists()


def test_benchmark_tool_records(tmp_path, monkeypatch):
    """benchmark_onnx.py end to end on one micro model (no timing check)."""
    monkeypatch.setenv('OMP_WAIT_POLICY', 'PASSIVE')  # the tool sets it on import; restored after
    path = os.path.join(ROOT, 'tools/deployment/benchmark_onnx.py')
    spec = importlib.util.spec_from_file_location('benchmark_onnx', path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out = tmp_path / 'bench.json'
    tool.main(['configs/cls/u_dwconv_micro_in1k.py', '--input-size', '32', '--warmup', '0',
               '--iters', '2', '--json', str(out)])
    [record] = json.loads(out.read_text())
    assert record['config'] == 'configs/cls/u_dwconv_micro_in1k.py'
    assert record['input_shape'] == [1, 3, 32, 32] and record['threads'] == 2
    assert record['pytorch_ms'] > 0 and record['onnxruntime_ms'] > 0
    assert record['max_abs_diff'] < ATOL
