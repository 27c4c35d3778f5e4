"""Timing of the DCNv3 core: compiled kernels against the PyTorch reference, in one process.

The cases are the DCNv3 calls of U-InternImage-tiny's four stages (channels 64/128/256/512,
groups 4/8/16/32, 16 channels per group, 3x3 kernel, stride 1, padding 1, 9 points) for
classification (batch 16, 224x224 input: maps 56, 28, 14, 7) and detection (batch 2, 800x1216
input: maps 200x304, 100x152, 50x76, 25x38). ``tools/analysis_tools/benchmark_dcnv3.py`` is the
command-line front end.
"""
import statistics
import time

import torch

from .dcnv3 import dcnv3

STAGES = ((64, 4), (128, 8), (256, 16), (512, 32))  # (channels, groups) of U-InternImage-tiny
SETTINGS = (('cls224', 16, (224, 224)), ('det800x1216', 2, (800, 1216)))
IMPLS = ('compiled', 'pytorch')


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
    """Random ``input (B, H, W, C)``, ``offset (B, H, W, G * 18)`` and softmaxed
    ``mask (B, H, W, G * 9)`` for a case, as the DCNv3 mixer produces them."""
    gen = torch.Generator().manual_seed(seed)
    batch, (height, width), channels, groups = (case['batch'], case['size'], case['channels'],
                                                case['groups'])
    value = torch.randn(batch, height, width, channels, generator=gen)
    offset = torch.randn(batch, height, width, groups * 18, generator=gen)
    mask = torch.randn(batch, height, width, groups, 9, generator=gen).softmax(-1)
    return [t.to(device=device, dtype=dtype) for t in (value, offset, mask.flatten(3))]


def _median_ms(fn, device, repeats, warmup):
    times = []
    for step in range(warmup + repeats):
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        if step >= warmup:
            times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def time_case(case, impl, device, repeats=5, warmup=1, dtype=torch.float32):
    """Median milliseconds ``(forward, forward + backward)`` of one case with ``impl``
    (``'compiled'`` or ``'pytorch'``) on ``device``."""
    device = torch.device(device)
    value, offset, mask = make_inputs(case, device, dtype)
    groups = case['groups']
    args = (3, 3, 1, 1, 1, 1, 1, 1, groups, case['channels'] // groups, 1.0)
    leaves = [t.detach().requires_grad_() for t in (value, offset, mask)]
    grad_out = torch.randn_like(value)

    def forward():
        with torch.no_grad():
            dcnv3(value, offset, mask, *args, impl=impl)

    def forward_backward():
        dcnv3(*leaves, *args, impl=impl).backward(grad_out)

    return (_median_ms(forward, device, repeats, warmup),
            _median_ms(forward_backward, device, repeats, warmup))


def run_benchmark(cases, device, impls=IMPLS, repeats=5, warmup=1):
    """Time every case with every impl; returns records with keys ``case``, ``impl``,
    ``device``, ``fwd_ms`` and ``fwd_bwd_ms``."""
    records = []
    for case in cases:
        for impl in impls:
            fwd, fwd_bwd = time_case(case, impl, device, repeats, warmup)
            records.append(dict(case=case['case'], impl=impl, device=str(device),
                                fwd_ms=round(fwd, 3), fwd_bwd_ms=round(fwd_bwd, 3)))
    return records


def format_table(records):
    """Side-by-side table (one row per case) with the reference / compiled time ratios."""
    by_case = {}
    for rec in records:
        by_case.setdefault(rec['case'], {})[rec['impl']] = rec
    header = (f'{"case":<22}{"compiled fwd":>14}{"pytorch fwd":>13}{"ratio":>8}'
              f'{"compiled f+b":>14}{"pytorch f+b":>13}{"ratio":>8}')
    lines = [header, '-' * len(header)]
    for case, recs in by_case.items():
        comp, ref = recs['compiled'], recs['pytorch']
        lines.append(f'{case:<22}{comp["fwd_ms"]:>11.2f} ms{ref["fwd_ms"]:>10.2f} ms'
                     f'{ref["fwd_ms"] / comp["fwd_ms"]:>7.1f}x'
                     f'{comp["fwd_bwd_ms"]:>11.2f} ms{ref["fwd_bwd_ms"]:>10.2f} ms'
                     f'{ref["fwd_bwd_ms"] / comp["fwd_bwd_ms"]:>7.1f}x')
    return '\n'.join(lines)
