"""Timing of the DCNv3 core's implementations (Triton, compiled, PyTorch) side by side, in one
process.

The cases are the DCNv3 calls of U-InternImage-tiny's four stages (channels 64/128/256/512,
groups 4/8/16/32, 16 channels per group, 3x3 kernel, stride 1, padding 1, 9 points) for
classification (batch 16, 224x224 input: maps 56, 28, 14, 7) and detection (batch 2, 800x1216
input: maps 200x304, 100x152, 50x76, 25x38). ``tools/analysis_tools/benchmark_dcnv3.py`` is the
command-line front end.
"""
import statistics
import time

import torch

from .dcnv3 import dcnv3_softmax

STAGES = ((64, 4), (128, 8), (256, 16), (512, 32))  # (channels, groups) of U-InternImage-tiny
SETTINGS = (('cls224', 16, (224, 224)), ('det800x1216', 2, (800, 1216)))
IMPLS = ('compiled', 'pytorch')
DTYPE_SUFFIX = {torch.bfloat16: '-bf16', torch.float16: '-fp16'}
DRY_RUN_CASE = dict(case='dry-run', batch=1, size=(3, 4), channels=16, groups=2)


def benchmark_cases(quick=False):
    """The benchmark cases as dicts with ``case``, ``batch``, ``size`` ``(H, W)``, ``channels``
    and ``groups``; ``quick`` keeps only the 224x224 classification cases."""
    cases = []
    for name, batch, (height, width) in SETTINGS[:1] if quick else SETTINGS:
        for stage, (channels, groups) in enumerate(STAGES):
            stride = 2**(stage + 2)
            cases.append(dict(case=f'{name}-stage{stage + 1}', batch=batch,
                              size=(height // stride, width // stride), channels=channels,
                              groups=groups))
    return cases


def make_inputs(case, device, dtype=torch.float32, seed=0):
    """Random ``input (B, H, W, C)``, ``offset (B, H, W, G * 18)`` and modulation
    ``logits (B, H, W, G * 9)`` for a case, as the DCNv3 mixer produces them."""
    gen = torch.Generator().manual_seed(seed)
    batch, (height, width), channels, groups = (case['batch'], case['size'], case['channels'],
                                                case['groups'])
    value = torch.randn(batch, height, width, channels, generator=gen)
    offset = torch.randn(batch, height, width, groups * 18, generator=gen)
    logits = torch.randn(batch, height, width, groups * 9, generator=gen)
    return [t.to(device=device, dtype=dtype) for t in (value, offset, logits)]


def _elapsed_ms(fn, device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) * 1e3


def authors_msda_runs(value, offset, logits):
    """``(forward, forward_backward)`` of the authors' MSDA CUDA kernel sampling the same points
    (:mod:`stm_mm.ops.authors_msda`; float16 for bfloat16, which it lacks). Only the kernel is
    timed: the sampling locations and the softmax are prepared once, outside the timing."""
    from .authors_msda import load_authors_msda, msda_inputs
    ext = load_authors_msda()
    if value.dtype == torch.bfloat16:
        value, offset, logits = (t.half() for t in (value, offset, logits))
    groups = logits.shape[-1] // 9
    mask = logits.unflatten(-1, (groups, 9)).softmax(-1).flatten(-2)
    inputs = msda_inputs(value, offset, mask)
    step = 64  # the im2col step of the authors' DCNv3 module
    grads = [torch.zeros_like(inputs[i]) for i in (0, 3, 4)]
    grad_out = torch.randn(value.shape[0], inputs[3].shape[1], value.shape[-1],
                           device=value.device, dtype=value.dtype)

    def forward():
        ext.forward(*inputs, step)

    def forward_backward():
        ext.forward(*inputs, step)
        for grad in grads:
            grad.zero_()
        ext.backward(*inputs, grad_out, *grads, step)

    return forward, forward_backward


def case_runs(case, impl, device, dtype=torch.float32):
    """``(forward, forward_backward)`` closures running :func:`dcnv3_softmax` (the mixer's
    call: softmax over the points, then DCNv3) on one case with ``impl``, or the authors' MSDA
    kernel for ``impl='authors_msda'`` (CUDA only)."""
    value, offset, logits = make_inputs(case, device, dtype)
    if impl == 'authors_msda':
        return authors_msda_runs(value, offset, logits)
    groups = case['groups']
    args = (3, 3, 1, 1, 1, 1, 1, 1, groups, case['channels'] // groups, 1.0)
    leaves = [t.detach().requires_grad_() for t in (value, offset, logits)]
    grad_out = torch.randn_like(value)

    def forward():
        with torch.no_grad():
            dcnv3_softmax(value, offset, logits, *args, impl=impl)

    def forward_backward():
        dcnv3_softmax(*leaves, *args, impl=impl).backward(grad_out)

    return forward, forward_backward


def run_benchmark(cases, device, impls=IMPLS, repeats=5, warmup=1, dtypes=(torch.float32, )):
    """Time every case and dtype with every impl, the impls interleaved in each of the
    ``repeats`` rounds (so that clock and load drift hits them alike). Returns records with keys
    ``case`` (suffixed ``-bf16`` / ``-fp16`` for those dtypes), ``impl``, ``device``, ``fwd_ms``
    and ``fwd_bwd_ms`` (medians)."""
    device = torch.device(device)
    records = []
    for case in cases:
        for dtype in dtypes:
            runs = {impl: case_runs(case, impl, device, dtype) for impl in impls}
            times = {impl: ([], []) for impl in impls}
            for step in range(warmup + repeats):
                for impl, fns in runs.items():
                    for fn, samples in zip(fns, times[impl]):
                        elapsed = _elapsed_ms(fn, device)
                        if step >= warmup:
                            samples.append(elapsed)
            name = case['case'] + DTYPE_SUFFIX.get(dtype, '')
            for impl, (fwd, fwd_bwd) in times.items():
                records.append(dict(case=name, impl=impl, device=str(device),
                                    fwd_ms=round(statistics.median(fwd), 3),
                                    fwd_bwd_ms=round(statistics.median(fwd_bwd), 3)))
    return records


def format_table(records):
    """Side-by-side table (one row per case): each impl's forward and forward+backward time, and
    the last impl's time over each other impl's (its speed-up over the last one)."""
    by_case = {}
    for rec in records:
        by_case.setdefault(rec['case'], {})[rec['impl']] = rec
    impls = list(next(iter(by_case.values()))) if by_case else []
    base = impls[-1] if impls else None
    columns = []
    for key, label in (('fwd_ms', 'fwd'), ('fwd_bwd_ms', 'f+b')):
        columns += [(key, impl, f'{impl} {label}') for impl in impls]
        columns += [(key, impl, f'{base}/{impl}') for impl in impls[:-1]]
    widths = [max(len(title) + 2, 12) for _, _, title in columns]
    header = f'{"case":<24}' + ''.join(f'{title:>{w}}' for (_, _, title), w in zip(columns, widths))
    lines = [header, '-' * len(header)]
    for case, recs in by_case.items():
        cells = []
        for (key, impl, title), w in zip(columns, widths):
            if title.startswith(f'{base}/'):
                cells.append(f'{recs[base][key] / recs[impl][key]:>{w - 1}.1f}x')
            else:
                cells.append(f'{recs[impl][key]:>{w - 3}.2f} ms')
        lines.append(f'{case:<24}' + ''.join(cells))
    return '\n'.join(lines)
