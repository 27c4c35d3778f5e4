"""The compiled DCNv3 operator (stm_mm._ext) against the PyTorch reference, its argument
checks, and the dispatch in stm_mm.ops.dcnv3 (impl=, STM_MM_DCNV3_IMPL, fallback warning)."""
import importlib
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import warnings

import pytest
import torch
from torch.testing import assert_close

from stm_mm.models.mixers import DCNv3Mixer
from stm_mm.ops import (DCNv3FallbackWarning, dcnv3, dcnv3_available, dcnv3_compiled,
                        dcnv3_func, dcnv3_reference)

from .. import ROOT
from ..helpers.fork_python import python

# the module, not the function stm_mm.ops.dcnv3 that shadows it as a package attribute
dcnv3_module = importlib.import_module('stm_mm.ops.dcnv3')
EXT = dcnv3_func._ext
needs_ext = pytest.mark.skipif(
    EXT is None, reason=f'stm_mm._ext is not built ({dcnv3_func._EXT_ERROR}); build it with '
    '`pip install -e .`')


def needs_cuda_ext(test):
    """A GPU test: marked ``cuda`` (the one kind of skip the suite allows, see conftest.py) and
    skipped without a GPU and CUDA kernels."""
    return pytest.mark.cuda(pytest.mark.skipif(
        EXT is None or not torch.cuda.is_available() or not EXT.with_cuda(),
        reason='needs a GPU and stm_mm._ext built with CUDA kernels (FORCE_CUDA=1 pip install '
        '-e .)')(test))


TOL = dict(rtol=1e-4, atol=1e-4)  # float32 values of order 1-10, summed in different orders


def make_case(batch, height, width, group, group_channels, kernel=(3, 3), stride=(1, 1),
              pad=(1, 1), dilation=(1, 1), offset_scale=1.0, spread=2, dtype=torch.float32,
              device='cpu'):
    """Random ``([input, offset, mask], args)`` for one call, input ``(B, H, W, G * Cg)``.

    Offsets move samples by whole pixels in ``[-spread, spread]`` plus a fraction in
    ``[0.1, 0.9]``: no sample lies within 0.1 px of a pixel row or column, where bilinear
    sampling has a kink (its gradient jumps) and round-off could pick either side.
    """
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, pad, dilation
    height_out = (height + 2 * ph - (dh * (kh - 1) + 1)) // sh + 1
    width_out = (width + 2 * pw - (dw * (kw - 1) + 1)) // sw + 1
    points = kh * kw
    value = torch.randn(batch, height, width, group * group_channels, dtype=torch.float64)
    shape = (batch, height_out, width_out, group * points * 2)
    whole = torch.randint(-spread, spread + 1, shape, dtype=torch.float64)
    offset = (whole + 0.1 + 0.8 * torch.rand(shape, dtype=torch.float64)) / offset_scale
    mask = torch.rand(batch, height_out, width_out, group * points, dtype=torch.float64)
    args = (kh, kw, sh, sw, ph, pw, dh, dw, group, group_channels, offset_scale)
    return [t.to(device=device, dtype=dtype) for t in (value, offset, mask)], args


def run(impl, tensors, args, grad_output=None):
    """Output and grads of input, offset and mask for ``impl``."""
    leaves = [t.detach().clone().requires_grad_() for t in tensors]
    out = dcnv3(*leaves, *args, impl=impl)
    if grad_output is None:
        grad_output = torch.randn_like(out)
    out.backward(grad_output)
    return out.detach(), [t.grad for t in leaves]


def assert_matches_reference(tensors, args, grad_output=None, **tol):
    tol = tol or TOL
    if grad_output is None:
        grad_output = torch.randn_like(dcnv3_reference(*tensors, *args))
    out, grads = run('compiled', tensors, args, grad_output)
    ref_out, ref_grads = run('pytorch', tensors, args, grad_output)
    assert_close(out, ref_out, **tol)
    for name, grad, ref in zip(('input', 'offset', 'mask'), grads, ref_grads):
        assert_close(grad, ref, **tol, msg=lambda m, name=name: f'grad of {name}: {m}')


CASES = {
    'single-group': dict(batch=1, height=7, width=9, group=1, group_channels=16),
    'batch3-groups4': dict(batch=3, height=8, width=6, group=4, group_channels=16),
    'stride2-cg32': dict(batch=2, height=11, width=13, group=2, group_channels=32,
                         stride=(2, 2)),
    'dilation2-odd-cg': dict(batch=1, height=9, width=10, group=3, group_channels=5,
                             pad=(2, 2), dilation=(2, 2)),
    'kernel3x5': dict(batch=3, height=5, width=7, group=8, group_channels=8, kernel=(3, 5),
                      pad=(1, 2)),
    'mixed-stride': dict(batch=2, height=10, width=7, group=2, group_channels=16, kernel=(2, 3),
                         stride=(2, 1), pad=(0, 1), dilation=(1, 2)),
    'outside-map': dict(batch=2, height=6, width=5, group=2, group_channels=16, spread=9),
    'offset-scale': dict(batch=1, height=6, width=8, group=4, group_channels=16,
                         offset_scale=0.5),
    'one-pixel-map': dict(batch=2, height=1, width=1, group=2, group_channels=16),
}


@needs_ext
@pytest.mark.parametrize('name', list(CASES))
def test_compiled_matches_reference(name):
    tensors, args = make_case(**CASES[name])
    assert_matches_reference(tensors, args)


@needs_ext
@pytest.mark.parametrize('threads', [1, 4])
@pytest.mark.parametrize('batch,group', [(1, 1), (3, 2)])
def test_parallel_paths(threads, batch, group):
    """Backward splits work by (image, groups) when there are enough of them for the threads,
    otherwise by chunks of output pixels with private buffers; both agree with the reference.
    (64 x 64 pixels x 9 points is enough work for two threads, see kPointsPerTask.)"""
    tensors, args = make_case(batch, 64, 64, group, 16, spread=4)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        assert_matches_reference(tensors, args)
    finally:
        torch.set_num_threads(previous)


@needs_ext
def test_non_contiguous_inputs():
    (value, offset, mask), args = make_case(2, 7, 6, 2, 16)
    value = value.permute(0, 3, 1, 2).contiguous().permute(0, 2, 3, 1)  # NCHW memory
    offset = torch.cat([offset, torch.zeros_like(offset)], -1)[..., :offset.shape[-1]]
    mask = mask.transpose(1, 2).contiguous().transpose(1, 2)
    assert not any(t.is_contiguous() for t in (value, offset, mask))
    grad_output = torch.randn(2, 16 * 2, 7, 6).permute(0, 2, 3, 1)
    assert not grad_output.is_contiguous()
    assert_matches_reference([value, offset, mask], args, grad_output)


@needs_ext
def test_float64_matches_reference():
    tensors, args = make_case(2, 6, 7, 3, 16, spread=4, dtype=torch.float64)
    assert_matches_reference(tensors, args, rtol=1e-12, atol=1e-12)


@needs_ext
def test_mixed_dtypes_promote_like_the_reference():
    (value, offset, mask), args = make_case(1, 5, 6, 2, 16)
    mask = mask.double()
    out = dcnv3(value, offset, mask, *args, impl='compiled')
    ref = dcnv3(value, offset, mask, *args, impl='pytorch')
    assert out.dtype == ref.dtype == torch.float64
    assert_close(out, ref, **TOL)


@needs_ext
@pytest.mark.parametrize('group_channels,spread', [(3, 1), (16, 3)])
def test_gradcheck_float64(group_channels, spread):
    tensors, args = make_case(2, 4, 5, 2, group_channels, spread=spread, dtype=torch.float64)
    leaves = [t.requires_grad_() for t in tensors]
    assert torch.autograd.gradcheck(lambda *t: dcnv3_compiled(*t, *args), leaves)


@needs_ext
def test_empty_batch():
    (value, offset, mask), args = make_case(0, 4, 4, 2, 16)
    out, grads = run('compiled', [value, offset, mask], args)
    assert out.shape == (0, 4, 4, 32)
    assert [g.shape for g in grads] == [value.shape, offset.shape, mask.shape]


# --- argument checks ---------------------------------------------------------------------


@needs_ext
@pytest.mark.parametrize('change,message', [
    (lambda v, o, m, a: (v[0], o, m, a), r'input must be \(B, H, W, G \* Cg\)'),
    (lambda v, o, m, a: (v[..., :-1], o, m, a), 'channels but group'),
    (lambda v, o, m, a: (v, o[..., :-2], m, a), r'offset must be \(B, Ho, Wo, G \* P \* 2\)'),
    (lambda v, o, m, a: (v, o[:1], m, a), 'offset must be'),
    (lambda v, o, m, a: (v, o, m[:, :-1], a), r'mask must be \(B, Ho, Wo, G \* P\)'),
    (lambda v, o, m, a: (v, o, m.unsqueeze(0), a), 'mask must be'),
    (lambda v, o, m, a: (v, o.double(), m, a), 'one dtype'),
    (lambda v, o, m, a: (v, o, m, (0, ) + a[1:]), 'kernel size must be positive'),
    (lambda v, o, m, a: (v, o, m, a[:2] + (0, ) + a[3:]), 'stride must be positive'),
    (lambda v, o, m, a: (v, o, m, a[:7] + (-1, ) + a[8:]), 'dilation must be positive'),
    (lambda v, o, m, a: (v, o, m, a[:8] + (0, ) + a[9:]), 'group and group_channels'),
    (lambda v, o, m, a: (v.half(), o.half(), m.half(), a), 'CPU kernels support float32'),
])
def test_bad_arguments_raise(change, message):
    (value, offset, mask), args = make_case(2, 5, 6, 2, 16)
    value, offset, mask, args = change(value, offset, mask, args)
    with pytest.raises(RuntimeError, match=message):
        EXT.dcnv3_forward(value, offset, mask, *args)
    grad_output = torch.zeros(2, 5, 6, 32, dtype=value.dtype)
    with pytest.raises(RuntimeError, match=message):
        EXT.dcnv3_backward(grad_output, value, offset, mask, *args)


@needs_ext
def test_bad_grad_output_raises():
    (value, offset, mask), args = make_case(2, 5, 6, 2, 16)
    with pytest.raises(RuntimeError, match=r'grad_output must be \(B, Ho, Wo, G \* Cg\)'):
        EXT.dcnv3_backward(torch.zeros(2, 5, 6, 31), value, offset, mask, *args)
    with pytest.raises(RuntimeError, match='grad_output must match'):
        EXT.dcnv3_backward(torch.zeros(2, 5, 6, 32).double(), value, offset, mask, *args)


@needs_ext
def test_dispatch_surfaces_shape_errors():
    (value, offset, mask), args = make_case(1, 5, 6, 2, 16)
    with pytest.raises(RuntimeError, match='mask must be'):
        dcnv3(value, offset, mask[..., 1:], *args)


# --- dispatch ------------------------------------------------------------------------------


def uses_compiled(out):
    """Whether the autograd graph of ``out`` contains the compiled op."""
    pending, seen = [out.grad_fn], set()
    while pending:
        node = pending.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if 'stm_mm_dcnv3_forward' in type(node).__name__:
            return True
        pending.extend(next_node for next_node, _ in node.next_functions)
    return False


@pytest.fixture
def tensors():
    (value, offset, mask), args = make_case(1, 5, 6, 2, 16)
    return [value.requires_grad_(), offset, mask], args


@pytest.fixture
def no_extension(monkeypatch):
    """Pretend stm_mm._ext failed to import, with fresh one-time-warning state."""
    monkeypatch.setattr(dcnv3_func, '_ext', None)
    monkeypatch.setattr(dcnv3_func, '_EXT_ERROR', ImportError('No module named stm_mm._ext'))
    monkeypatch.setattr(dcnv3_module, '_warned', set())


@needs_ext
def test_auto_uses_compiled_op(tensors, monkeypatch):
    monkeypatch.delenv('STM_MM_DCNV3_IMPL', raising=False)
    assert dcnv3_available('cpu', torch.float32) and dcnv3_available('cpu', torch.float64)
    assert uses_compiled(dcnv3(*tensors[0], *tensors[1]))
    assert uses_compiled(dcnv3(*tensors[0], *tensors[1], impl='auto'))


@needs_ext
def test_env_var_and_argument_force_an_implementation(tensors, monkeypatch):
    monkeypatch.setenv('STM_MM_DCNV3_IMPL', 'pytorch')
    assert not uses_compiled(dcnv3(*tensors[0], *tensors[1]))
    assert uses_compiled(dcnv3(*tensors[0], *tensors[1], impl='compiled'))  # argument wins
    monkeypatch.setenv('STM_MM_DCNV3_IMPL', 'compiled')
    assert uses_compiled(dcnv3(*tensors[0], *tensors[1]))
    assert not uses_compiled(dcnv3(*tensors[0], *tensors[1], impl='pytorch'))


def test_unknown_impl_raises(tensors, monkeypatch):
    with pytest.raises(ValueError, match="impl must be one of .* got 'fast'"):
        dcnv3(*tensors[0], *tensors[1], impl='fast')
    monkeypatch.setenv('STM_MM_DCNV3_IMPL', 'cuda')
    with pytest.raises(ValueError, match="STM_MM_DCNV3_IMPL must be one of .* got 'cuda'"):
        dcnv3(*tensors[0], *tensors[1])


def test_fallback_warns_once_and_runs_reference(tensors, no_extension, monkeypatch):
    monkeypatch.delenv('STM_MM_DCNV3_IMPL', raising=False)
    assert not dcnv3_available()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        first = dcnv3(*tensors[0], *tensors[1])
        second = dcnv3(*tensors[0], *tensors[1])
    fallback = [w for w in caught if issubclass(w.category, DCNv3FallbackWarning)]
    assert len(fallback) == 1
    text = str(fallback[0].message)
    assert 'stm_mm._ext could not be imported' in text and 'pip install -e .' in text
    assert 'FORCE_CUDA=1' in text and 'STM_MM_DCNV3_IMPL=pytorch' in text
    assert not uses_compiled(first)
    assert_close(first, dcnv3_reference(*tensors[0], *tensors[1]))
    assert_close(second, first)


def test_forcing_pytorch_does_not_warn(tensors, no_extension):
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        dcnv3(*tensors[0], *tensors[1], impl='pytorch')


def test_forcing_compiled_without_extension_raises(tensors, no_extension, monkeypatch):
    with pytest.raises(RuntimeError, match=r'impl=compiled .* could not be imported.*pip install'):
        dcnv3(*tensors[0], *tensors[1], impl='compiled')
    monkeypatch.setenv('STM_MM_DCNV3_IMPL', 'compiled')
    with pytest.raises(RuntimeError, match='impl=compiled'):
        dcnv3(*tensors[0], *tensors[1])


@needs_ext
@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_half_precision_on_cpu_runs_in_float32(dtype, monkeypatch):
    """CPU autocast hands DCNv3 half tensors: the float32 kernels run them, no fallback."""
    monkeypatch.setattr(dcnv3_module, '_warned', set())
    tensors, args = make_case(1, 4, 5, 2, 16)
    assert dcnv3_available('cpu', dtype)
    half = [t.to(dtype).requires_grad_() for t in tensors]
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        out = dcnv3(*half, *args)
    assert uses_compiled(out) and out.dtype == dtype
    out.float().sum().backward()
    assert all(t.grad.dtype == dtype for t in half)
    expected = dcnv3(*[t.detach().float() for t in half], *args, impl='compiled')
    assert_close(out.float(), expected.to(dtype).float())


@needs_ext
def test_unsupported_dtype_or_device_reason():
    assert not dcnv3_available('cpu', torch.int32)
    assert dcnv3_func.compiled_unavailable_reason('cpu', torch.int32) == (
        'the cpu kernels support float32, float64, not int32')
    assert 'no kernels for device type' in dcnv3_func.compiled_unavailable_reason(
        'meta', torch.float32)
    if not EXT.with_cuda():
        reason = dcnv3_func.compiled_unavailable_reason('cuda', torch.float32)
        assert reason == 'stm_mm._ext was built without CUDA kernels'


def test_import_without_extension():
    """Importing stm_mm never fails when the extension is missing; DCNv3 then falls back."""
    code = textwrap.dedent("""
        import sys, warnings
        class BlockExt:
            def find_spec(self, name, path=None, target=None):
                if name == 'stm_mm._ext':
                    raise ImportError('blocked by the test')
        sys.meta_path.insert(0, BlockExt())
        import stm_mm, torch
        from stm_mm.ops import dcnv3, dcnv3_available, DCNv3FallbackWarning
        assert not dcnv3_available()
        x, off, m = torch.randn(1, 4, 4, 16), torch.zeros(1, 4, 4, 18), torch.ones(1, 4, 4, 9)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            out = dcnv3(x, off, m, 3, 3, 1, 1, 1, 1, 1, 1, 1, 16, 1.0)
        assert [w.category for w in caught] == [DCNv3FallbackWarning], caught
        assert 'blocked by the test' in str(caught[0].message)
        print('ok', tuple(out.shape))
    """)
    env = dict(os.environ)
    env.pop('STM_MM_DCNV3_IMPL', None)
    result = subprocess.run([python(), '-c', code], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith('ok (1, 4, 4, 16)')


# --- the mixer ------------------------------------------------------------------------------


@needs_ext
def test_mixer_same_with_compiled_and_pytorch(monkeypatch):
    mixer = DCNv3Mixer(32, 2).double()
    for p in mixer.parameters():
        torch.nn.init.normal_(p, std=0.3)
    x = torch.randn(2, 9, 11, 32, dtype=torch.float64)
    results = {}
    for impl in ('compiled', 'pytorch'):
        monkeypatch.setenv('STM_MM_DCNV3_IMPL', impl)
        mixer.zero_grad()
        xi = x.clone().requires_grad_()
        out = mixer(xi)
        out.square().sum().backward()
        results[impl] = (out.detach(), xi.grad,
                         {n: p.grad.clone() for n, p in mixer.named_parameters()})
    (out_c, gx_c, gp_c), (out_r, gx_r, gp_r) = results['compiled'], results['pytorch']
    assert_close(out_c, out_r, rtol=1e-10, atol=1e-10)
    assert_close(gx_c, gx_r, rtol=1e-10, atol=1e-10)
    for name in gp_r:
        assert_close(gp_c[name], gp_r[name], rtol=1e-10, atol=1e-10, msg=name)


# --- CUDA -------------------------------------------------------------------------------------


@needs_cuda_ext
@pytest.mark.parametrize('name', ['batch3-groups4', 'stride2-cg32', 'dilation2-odd-cg',
                                  'kernel3x5', 'outside-map'])
def test_cuda_matches_reference(name):
    tensors, args = make_case(**CASES[name], device='cuda')
    assert_matches_reference(tensors, args)


@needs_cuda_ext
@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_cuda_half_precision(dtype):
    """float16 / bfloat16 inputs, float32 sums: close to the float32 reference."""
    tensors, args = make_case(2, 9, 8, 4, 16, device='cuda', dtype=dtype)
    grad_output = torch.randn(2, 9, 8, 64, device='cuda', dtype=dtype)
    out, grads = run('compiled', tensors, args, grad_output)
    ref_out, ref_grads = run('pytorch', [t.float() for t in tensors], args, grad_output.float())
    assert out.dtype == dtype and all(g.dtype == dtype for g in grads)
    tol = dict(rtol=2e-2, atol=5e-2) if dtype == torch.bfloat16 else dict(rtol=5e-3, atol=1e-2)
    assert_close(out.float(), ref_out, **tol)
    for grad, ref in zip(grads, ref_grads):
        assert_close(grad.float(), ref, **tol)


@needs_cuda_ext
def test_cuda_gradcheck_float64():
    tensors, args = make_case(2, 4, 5, 2, 3, spread=1, dtype=torch.float64, device='cuda')
    leaves = [t.requires_grad_() for t in tensors]
    assert torch.autograd.gradcheck(lambda *t: dcnv3_compiled(*t, *args), leaves)


CUDA_HOME = os.environ.get('CUDA_HOME', '/usr/local/cuda')


@pytest.mark.slow
@pytest.mark.cuda
@pytest.mark.skipif(not os.path.exists(os.path.join(CUDA_HOME, 'bin', 'nvcc')),
                    reason=f'nvcc not found under CUDA_HOME={CUDA_HOME}')
def test_cuda_sources_compile(tmp_path):
    """nvcc compiles the CUDA kernels together with the C++ sources (no GPU needed), and the
    CPU path of the resulting module works."""
    code = textwrap.dedent(f"""
        import glob, torch
        from torch.utils.cpp_extension import load
        csrc = {os.path.join(ROOT, 'ops', 'csrc')!r}
        sources = sorted(glob.glob(csrc + '/*.cpp') + glob.glob(csrc + '/cpu/*.cpp') +
                         glob.glob(csrc + '/cuda/*.cu'))
        assert any(s.endswith('.cu') for s in sources), sources
        ext = load(name='stm_mm_ext_cuda_check', sources=sources, extra_include_paths=[csrc],
                   extra_cflags=['-O1', '-g0', '-fopenmp', '-DWITH_CUDA'],
                   extra_cuda_cflags=['-O3', '--use_fast_math', '-DWITH_CUDA'],
                   extra_ldflags=['-fopenmp'], build_directory={str(tmp_path)!r},
                   with_cuda=True)
        assert ext.with_cuda()
        from stm_mm.ops import dcnv3_reference
        x, off, m = torch.randn(2, 5, 6, 32), torch.rand(2, 5, 6, 36) * 3, torch.rand(2, 5, 6, 18)
        args = (3, 3, 1, 1, 1, 1, 1, 1, 2, 16, 1.0)
        torch.testing.assert_close(ext.dcnv3_forward(x, off, m, *args),
                                   dcnv3_reference(x, off, m, *args), rtol=1e-4, atol=1e-5)
        print('compiled with CUDA kernels; CPU path ok')
    """)
    # One architecture, sm_80 (the older of the two the GPU path targets): the .cu has no
    # __CUDA_ARCH__ branch and uses nothing newer than atomicAdd on double (sm_60), so sm_90
    # would only compile the same device code a second time (cicc and ptxas).
    env = dict(os.environ, CUDA_HOME=CUDA_HOME, TORCH_CUDA_ARCH_LIST='8.0',
               TORCH_EXTENSIONS_DIR=str(tmp_path), MAX_JOBS='2')
    env.pop('FORCE_CUDA', None)
    result = subprocess.run([sys.executable, '-c', code], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert 'CPU path ok' in result.stdout


# --- the benchmark tool ---------------------------------------------------------------------


@needs_ext
def test_benchmark_tool_writes_records(tmp_path, monkeypatch, capsys):
    from stm_mm.ops import benchmark
    cases = benchmark.benchmark_cases(quick=True)
    assert [c['size'] for c in cases] == [(56, 56), (28, 28), (14, 14), (7, 7)]
    assert [(c['channels'], c['groups'], c['batch']) for c in cases] == [
        (64, 4, 16), (128, 8, 16), (256, 16, 16), (512, 32, 16)]
    assert [c['size'] for c in benchmark.benchmark_cases()[4:]] == [(200, 304), (100, 152),
                                                                     (50, 76), (25, 38)]
    spec = importlib.util.spec_from_file_location(
        'benchmark_dcnv3', os.path.join(ROOT, 'tools', 'analysis_tools', 'benchmark_dcnv3.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    tiny = [dict(case='tiny', batch=1, size=(5, 6), channels=32, groups=2)]
    monkeypatch.setattr(tool, 'benchmark_cases', lambda quick: tiny)
    path = tmp_path / 'records.json'
    tool.main(['--device', 'cpu', '--quick', '--repeats', '1', '--json', str(path)])
    records = json.loads(path.read_text())
    assert [(r['case'], r['impl'], r['device']) for r in records] == [
        ('tiny', 'compiled', 'cpu'), ('tiny', 'pytorch', 'cpu')]
    assert all(set(r) == {'case', 'impl', 'device', 'fwd_ms', 'fwd_bwd_ms'} for r in records)
    assert all(r['fwd_ms'] > 0 and r['fwd_bwd_ms'] > 0 for r in records)
    table = capsys.readouterr().out
    assert 'tiny' in table and table.count('x') >= 2  # the two ratios
