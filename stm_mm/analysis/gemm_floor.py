"""The time a training step spends in its linear layers' matrix products alone (CPU timing aid).

A training step of these models is dominated by the ``nn.Linear`` GEMMs (MLPs, projections):
every call costs one product forward (``addmm``) and two backward (input and weight gradient),
plus the bias gradient's sum. Any implementation of the same model runs the same products, so
their time is a floor under the step of every implementation and bounds how much faster one
implementation can be than another: at most ``other step / floor``.

:func:`record_linear_calls` runs one forward pass and notes the shape of every linear call;
:func:`make_gemm_step` returns a step that replays exactly those products on random data of the
same shapes (one set of buffers per distinct shape, so the replay is cache-friendlier than the
real step: the floor is, if anything, too low).
"""
from collections import Counter

import torch
import torch.nn as nn
import torch.nn.functional as F


def record_linear_calls(model, *inputs):
    """``Counter`` of ``(tokens, in_features, out_features, has_bias)`` over every ``nn.Linear``
    call of one forward pass of ``model(*inputs)``, run with autograd on (CPU inference paths
    may split layers into chunks; training does not) and no backward pass."""
    calls = Counter()

    def hook(module, args, output):
        tokens = args[0].numel() // module.in_features
        calls[(tokens, module.in_features, module.out_features, module.bias is not None)] += 1

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Linear)]
    try:
        with torch.enable_grad():
            model(*inputs)
    finally:
        for handle in handles:
            handle.remove()
    return calls


def gemm_flops(calls, train=True):
    """FLOPs of the recorded products: ``2 * tokens * in * out`` per call, x3 with ``train``."""
    return sum(2 * n * i * o * count * (3 if train else 1) for (n, i, o, _), count in calls.items())


def make_gemm_step(calls, train=True, dtype=torch.float32, seed=0):
    """A function that runs every recorded product once: forward ``addmm``/``mm`` and, with
    ``train``, the input-gradient and weight-gradient products and the bias gradient's sum."""
    generator = torch.Generator().manual_seed(seed)
    buffers = []
    for (tokens, fan_in, fan_out, has_bias), count in calls.items():
        x = torch.randn(tokens, fan_in, generator=generator, dtype=dtype)
        weight = torch.randn(fan_out, fan_in, generator=generator, dtype=dtype)
        bias = torch.randn(fan_out, generator=generator, dtype=dtype) if has_bias else None
        grad = torch.randn(tokens, fan_out, generator=generator, dtype=dtype)
        buffers.append((count, x, weight, bias, grad))

    def step():
        for count, x, weight, bias, grad in buffers:
            for _ in range(count):
                F.linear(x, weight, bias)
                if train:
                    grad.mm(weight)
                    grad.t().mm(x)
                    if bias is not None:
                        grad.sum(0)

    return step
