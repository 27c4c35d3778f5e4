"""One token mixer, every implementation of it, timed side by side in one process.

A case is one mixer of a stage of a model (``(B, H, W, C)`` in and out, the stage's heads); its
implementations are switched through the op's ``STM_MM_<OP>_IMPL`` variable
(:mod:`stm_mm.ops.impl_switch`), so the same module and weights run every implementation in
interleaved rounds (a machine that speeds up or slows down affects all alike). The first
implementation is the baseline: the table gives each one's speed relative to it and the largest
output difference from it.
"""
import contextlib
import os
import time

import numpy as np
import torch

from ..models.mixers import ARCH_ZOO
from ..models.mixers.spec import SpecView
from ..ops.impl_switch import impl_env_var
from ..registry import TOKEN_MIXERS

# implementations of each mixer with several, baseline (the portable fast path) first
MIXER_IMPLS = SpecView('impls')
DTYPES = dict(fp32=torch.float32, bf16=torch.bfloat16, fp16=torch.float16, fp64=torch.float64)


def stage_cases(stm, arch='tiny', batch_size=128, input_size=(224, 224)):
    """The mixer calls of ``stm``'s ``arch`` model, one per stage (Swin: an unshifted and a
    shifted block): dicts with ``stm``, ``stage``, ``block_index``, ``batch_size``, ``size``
    ``(H, W)`` (the stage's map: the input over 4, 8, 16, 32), ``dim`` and ``num_heads``."""
    preset = ARCH_ZOO[stm][arch]
    cases = []
    heads = preset['num_heads'] or (None, ) * 4
    for stage, (dim, heads) in enumerate(zip(preset['dims'], heads)):
        stride = 2**(stage + 2)
        size = (-(-input_size[0] // stride), -(-input_size[1] // stride))
        for block_index in ((0, 1) if stm == 'swin' else (0, )):
            cases.append(dict(stm=stm, stage=stage + 1, block_index=block_index,
                              batch_size=batch_size, size=size, dim=dim, num_heads=heads))
    return cases


@contextlib.contextmanager
def mixer_impl(stm, impl):
    """Within the context the ``stm`` mixers run implementation ``impl`` (None: a mixer with
    one implementation, nothing to switch)."""
    if impl is None:
        yield
        return
    name = impl_env_var(stm)
    previous = os.environ.get(name)
    os.environ[name] = impl
    try:
        yield
    finally:
        if previous is None:
            del os.environ[name]
        else:
            os.environ[name] = previous


def build_mixer(case, device, dtype):
    """The mixer of ``case`` with random weights, on ``device`` in ``dtype``."""
    mixer = TOKEN_MIXERS.build(dict(type=case['stm'], dim=case['dim'],
                                    num_heads=case['num_heads'], stage_index=case['stage'] - 1,
                                    block_index=case['block_index']))
    return mixer.to(device=device, dtype=dtype)


def time_mixer(case, impls, device='cpu', dtype='fp32', train=False, warmup=3, iters=10):
    """Time ``impls`` of ``case``'s mixer in interleaved rounds.

    Args:
        impls: names from :data:`MIXER_IMPLS` (``(None, )`` for a mixer with one).
        dtype: a key of :data:`DTYPES`; weights and input are cast to it (no autocast).
        train: forward + backward of the output's sum (input gradient included) instead of a
            forward pass without autograd.
    Returns:
        one record per implementation: the case, ``impl``, ``dtype``, ``mode``, ``ms`` (mean),
        ``p50_ms``, ``speedup`` over the first implementation and ``max_abs_diff`` of its output
        from the first one's.
    """
    device = torch.device(device)
    torch_dtype = DTYPES[dtype]
    mixer = build_mixer(case, device, torch_dtype).train(train)
    gen = torch.Generator(device='cpu').manual_seed(0)
    x = torch.randn(case['batch_size'], *case['size'], case['dim'], generator=gen)
    x = x.to(device=device, dtype=torch_dtype).requires_grad_(train)

    def step():
        with contextlib.nullcontext() if train else torch.no_grad():
            out = mixer(x)
            if train:
                out.float().sum().backward()
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        return out

    outputs, times = [], [[] for _ in impls]
    for i, impl in enumerate(impls):
        with mixer_impl(case['stm'], impl):
            outputs.append(step().detach().float())
    for round_index in range(warmup + iters):
        for i, impl in enumerate(impls):
            with mixer_impl(case['stm'], impl):
                start = time.perf_counter()
                step()
                if round_index >= warmup:
                    times[i].append((time.perf_counter() - start) * 1000)
    base = float(np.mean(times[0]))
    return [dict(case, size=list(case['size']), impl=impl, dtype=dtype,
                 mode='train' if train else 'inference', ms=float(np.mean(t)),
                 p50_ms=float(np.percentile(t, 50)), speedup=base / float(np.mean(t)),
                 max_abs_diff=float((out - outputs[0]).abs().max()))
            for impl, t, out in zip(impls, times, outputs)]


def format_records(records):
    """A table of :func:`time_mixer` records, one line per implementation."""
    lines = [f'{"mixer":<7}{"stage":>6}{"block":>6}{"map":>9}{"B":>5}{"dtype":>6}{"mode":>10}'
             f'{"impl":>10}{"ms":>10}{"speedup":>9}  max |diff|']
    for r in records:
        lines.append(f'{r["stm"]:<7}{r["stage"]:>6}{r["block_index"]:>6}'
                     f'{"x".join(map(str, r["size"])):>9}{r["batch_size"]:>5}{r["dtype"]:>6}'
                     f'{r["mode"]:>10}{r["impl"]:>10}{r["ms"]:>10.3f}{r["speedup"]:>8.2f}x  '
                     f'{r["max_abs_diff"]:.2e}')
    return '\n'.join(lines)
