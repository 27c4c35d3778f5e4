"""The Triton DCNv3 kernels (stm_mm.ops.triton.dcnv3) against the PyTorch reference: float64
under the interpreter without a GPU, float32 / bfloat16 on a GPU; dispatch of impl='triton';
the benchmark tool's dry run."""
import importlib.util
import json
import os

import pytest
import torch
from torch.testing import assert_close

from stm_mm.models.mixers import DCNv3Mixer
from stm_mm.ops import dcnv3, dcnv3_reference, dcnv3_softmax
from stm_mm.ops.triton import triton_unavailable_reason

from .. import ROOT
from .test_dcnv3_op import make_case


def cuda(test):
    """A GPU test: marked ``cuda`` (the one kind of skip allowed) and skipped without a GPU."""
    return pytest.mark.cuda(pytest.mark.skipif(not torch.cuda.is_available(),
                                               reason='needs a GPU')(test))

# tiny: the interpreter runs every program instance (32 / 16 pixels of one group) in numpy
CASES = {
    'outside-map-odd-groups2': dict(batch=2, height=3, width=3, group=2, group_channels=5,
                                    spread=9, offset_scale=0.5),
    'stride-dilation-3x5': dict(batch=1, height=5, width=4, group=1, group_channels=4,
                                kernel=(3, 5), stride=(2, 1), pad=(1, 2), dilation=(2, 1),
                                spread=3),
}


def softmax_reference(input, offset, logits, *args):
    """The reference with the softmax over each group's points in PyTorch."""
    B, Ho, Wo, _ = logits.shape
    mask = logits.view(B, Ho, Wo, args[8], -1).softmax(-1).view(B, Ho, Wo, -1)
    return dcnv3_reference(input, offset, mask, *args)


def outputs_and_grads(fn, tensors, args, grad_output):
    leaves = [t.detach().clone().requires_grad_() for t in tensors]
    out = fn(*leaves, *args)
    out.backward(grad_output)
    return [out.detach()] + [t.grad for t in leaves]


def assert_same(fn, ref, tensors, args, **tol):
    grad_output = torch.randn_like(ref(*tensors, *args))
    results = outputs_and_grads(fn, tensors, args, grad_output)
    expected = outputs_and_grads(ref, tensors, args, grad_output)
    for name, got, want in zip(('output', 'input', 'offset', 'mask'), results, expected):
        assert_close(got, want, **tol, msg=lambda m, name=name: f'{name}: {m}')


def triton_softmax(*a):
    return dcnv3_softmax(*a, impl='triton')


def triton_plain(*a):
    return dcnv3(*a, impl='triton')


@pytest.mark.parametrize('name', list(CASES))
def test_softmax_kernels_match_reference_float64(name):
    """Forward and the gradients of input, offset and the mask logits; offset and logits are
    channel slices of one projection, as the mixer passes them (read in place)."""
    (value, offset, logits), args = make_case(**CASES[name], dtype=torch.float64)
    projection = torch.cat([offset, logits * 6 - 3], -1)
    offset, logits = projection.split([offset.shape[-1], logits.shape[-1]], -1)
    assert not offset.is_contiguous() and not logits.is_contiguous()
    assert_same(triton_softmax, softmax_reference, [value, offset, logits], args)


def test_given_weights_match_reference_float64():
    """dcnv3(impl='triton') takes the normalised mask as it is (no softmax)."""
    tensors, args = make_case(batch=1, height=2, width=3, group=2, group_channels=3, spread=4,
                              dtype=torch.float64)
    assert_same(triton_plain, dcnv3_reference, tensors, args)


def test_opcheck():
    from stm_mm.ops.triton.dcnv3 import dcnv3_triton
    (value, offset, logits), args = make_case(1, 2, 2, 1, 2, dtype=torch.float64)
    leaves = [t.requires_grad_() for t in (value, offset, logits)]
    torch.library.opcheck(dcnv3_triton, (*leaves, *args, True))


def test_mixer_triton_equals_default_float64(monkeypatch):
    monkeypatch.delenv('STM_MM_DCNV3_IMPL', raising=False)
    results = {}
    x = torch.randn(1, 3, 4, 16, dtype=torch.float64)
    for impl in ('triton', None):
        torch.manual_seed(1)
        mixer = DCNv3Mixer(16, 2, impl=impl).double()
        for p in mixer.parameters():
            torch.nn.init.normal_(p, std=0.3)
        xi = x.clone().requires_grad_()
        out = mixer(xi)
        out.square().sum().backward()
        results[impl] = [out.detach(), xi.grad] + [p.grad for p in mixer.parameters()]
    for got, want in zip(results['triton'], results[None]):
        assert_close(got, want)


def test_mixer_state_dict_keys_unchanged():
    mixer = DCNv3Mixer(16, 2, impl='triton')
    assert [k for k in mixer.state_dict() if 'offsets' in k or 'attention' in k] == [
        'sampling_offsets.weight', 'sampling_offsets.bias', 'attention_weights.weight',
        'attention_weights.bias']


def test_bad_impl_and_shapes_raise():
    with pytest.raises(ValueError, match="impl must be one of .* got 'cuda'"):
        DCNv3Mixer(16, 2, impl='cuda')
    (value, offset, logits), args = make_case(1, 3, 4, 2, 4)
    with pytest.raises(ValueError, match=r'offset must be \(B, Ho, Wo, G \* P \* 2\)'):
        dcnv3_softmax(value, offset[..., 1:], logits, *args, impl='triton')


def test_auto_never_picks_triton_on_cpu(monkeypatch):
    """'auto' on the CPU runs a portable path (the interpreter is for tests); impl='triton'
    without the interpreter says why it cannot run."""
    from stm_mm.ops.dcnv3 import resolve_impl
    monkeypatch.delenv('STM_MM_DCNV3_IMPL', raising=False)
    assert resolve_impl(None, 'cpu', torch.float32) in ('compiled', 'pytorch')
    monkeypatch.setenv('TRITON_INTERPRET', '0')
    assert triton_unavailable_reason('cpu') is not None
    (value, offset, logits), args = make_case(1, 3, 4, 2, 4)
    with pytest.raises(RuntimeError, match='impl=triton was requested but .*CUDA device'):
        dcnv3_softmax(value, offset, logits, *args, impl='triton')


def test_compile_specs_name_every_kernel_parameter():
    from stm_mm.ops.triton import dcnv3 as module
    specs = module.compile_specs()
    assert [s['name'] for s in specs] == ['dcnv3_fwd_fp32', 'dcnv3_bwd_fp32', 'dcnv3_fwd_bf16',
                                          'dcnv3_bwd_bf16']
    for spec in specs:
        assert list(spec['args']) == spec['kernel'].arg_names


def test_benchmark_tool_dry_run_on_cpu(tmp_path):
    """The tool times the Triton kernels (under the interpreter) beside the reference."""
    spec = importlib.util.spec_from_file_location(
        'benchmark_dcnv3', os.path.join(ROOT, 'tools', 'analysis_tools', 'benchmark_dcnv3.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    path = tmp_path / 'records.json'
    tool.main(['--device', 'cpu', '--dry-run', '--impls', 'triton', 'pytorch', '--dtypes',
               'bfloat16', '--json', str(path)])
    records = json.loads(path.read_text())
    assert [(r['case'], r['impl']) for r in records] == [('dry-run-bf16', 'triton'),
                                                         ('dry-run-bf16', 'pytorch')]
    assert all(r['fwd_ms'] > 0 and r['fwd_bwd_ms'] > 0 for r in records)


@cuda
@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16, torch.float64])
def test_cuda_matches_reference(dtype):
    tensors, args = make_case(2, 9, 8, 4, 16, spread=4, device='cuda')
    tensors[2] = tensors[2] * 6 - 3
    grad_output = torch.randn(2, 9, 8, 64, device='cuda')
    tensors, grad_output = [t.to(dtype) for t in tensors], grad_output.to(dtype)
    results = outputs_and_grads(triton_softmax, tensors, args, grad_output)
    expected = outputs_and_grads(softmax_reference, [t.double() for t in tensors], args,
                                 grad_output.double())  # the same (rounded) inputs
    tol = {torch.float32: dict(rtol=1e-4, atol=1e-4), torch.bfloat16: dict(rtol=2e-2, atol=5e-2),
           torch.float64: dict(rtol=1e-10, atol=1e-10)}[dtype]
    for got, want in zip(results, expected):
        assert got.dtype == dtype
        assert_close(got.double(), want, **tol)


@cuda
def test_cuda_auto_picks_triton(monkeypatch):
    from stm_mm.ops.dcnv3 import resolve_impl
    monkeypatch.delenv('STM_MM_DCNV3_IMPL', raising=False)
    assert resolve_impl(None, 'cuda', torch.bfloat16) == 'triton'
