"""Throughput, latency and peak memory of a model, fused path vs the readable reference.

The "reference" run is the same model with the same weights inside
:func:`stm_mm.models.utils.use_reference_attention`: attention scores are materialised and
masks/biases added explicitly instead of going through ``scaled_dot_product_attention``.
"""
import contextlib
import copy
import resource
import time

import numpy as np
import torch

from ..models.utils import use_reference_attention


def _peak_memory_mb(device):
    if device.type == 'cuda':
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process peak RSS


def time_model(model, batch_size, input_size, device='cpu', train=False, amp=None,
               reference=False, warmup=3, iters=10):
    """Time ``model`` (image -> tensor(s)) on random images ``(B, 3, H, W)``.

    Args:
        train: time forward + backward (of the sum of the outputs) instead of inference.
        amp: None, ``'bf16'`` or ``'fp16'`` autocast.
        reference: run the unfused reference attention.
    Returns:
        dict with ``images_per_s``, ``latency_ms`` (p50, p90, p99), ``peak_mem_mb``.
    """
    device = torch.device(device)
    model = model.to(device).train(train)
    x = torch.randn(batch_size, 3, *input_size, device=device)
    dtype = dict(bf16=torch.bfloat16, fp16=torch.float16).get(amp)
    autocast = (torch.autocast(device.type, dtype=dtype) if dtype is not None else
                contextlib.nullcontext())
    grad = contextlib.nullcontext() if train else torch.no_grad()

    def step():
        with grad, autocast:
            out = model(x)
            out = out if isinstance(out, torch.Tensor) else sum(o.float().sum() for o in out)
        if train:
            out.float().sum().backward()
            model.zero_grad(set_to_none=True)
        if device.type == 'cuda':
            torch.cuda.synchronize(device)

    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    with use_reference_attention(reference):
        for i in range(warmup + iters):
            start = time.perf_counter()
            step()
            if i >= warmup:
                times.append(time.perf_counter() - start)
    times = np.array(times) * 1000
    return dict(images_per_s=batch_size / (times.mean() / 1000),
                latency_ms=dict(p50=float(np.percentile(times, 50)),
                                p90=float(np.percentile(times, 90)),
                                p99=float(np.percentile(times, 99))),
                peak_mem_mb=_peak_memory_mb(device))


def max_output_difference(model, batch_size, input_size, device='cpu'):
    """Largest |fused - reference| over the outputs, and whether they agree at rtol 1e-4.

    Compared on a copy whose layer scales are 1, so the mixers' outputs are not hidden by the
    1e-6 initial layer scale.
    """
    model = copy.deepcopy(model).to(device).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.rsplit('.', 1)[-1] in ('gamma1', 'gamma2'):
                param.fill_(1.0)
    x = torch.randn(batch_size, 3, *input_size, device=device)
    with torch.no_grad():
        fast = model(x)
        with use_reference_attention():
            ref = model(x)
    fast = fast if isinstance(fast, (tuple, list)) else (fast, )
    ref = ref if isinstance(ref, (tuple, list)) else (ref, )
    diff = max(float((a - b).abs().max()) for a, b in zip(fast, ref))
    close = all(torch.allclose(a, b, rtol=1e-4, atol=1e-5) for a, b in zip(fast, ref))
    return diff, close
