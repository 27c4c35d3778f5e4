"""Throughput, latency and peak memory of a model, fused path vs the readable reference.

The "reference" run is the same model with the same weights inside
:func:`stm_mm.models.utils.use_reference_attention`: attention scores are materialised and
masks/biases added explicitly instead of going through ``scaled_dot_product_attention``.
"""
import contextlib
import copy
import ctypes
import resource
import time

import numpy as np
import torch

from ..models.utils import use_reference_attention


def keep_freed_cpu_memory():
    """Make glibc's malloc keep freed memory in the process instead of unmapping it.

    By default every allocation above 32 MiB (a stage-1 feature map at 448x448, batch 8) is a
    fresh ``mmap``: the kernel zero-fills its pages on first touch, on every forward pass. At
    448x448 that page-faulting alone made inference 4.5-4.8x slower than at 224x224 instead of
    ~4x. ``M_MMAP_MAX = 0`` serves large blocks from the heap and a high ``M_TRIM_THRESHOLD``
    keeps them there (the environment variables ``MALLOC_MMAP_MAX_=0
    MALLOC_TRIM_THRESHOLD_=2147483647`` do the same for any program; jemalloc or tcmalloc
    avoid it too). The process keeps its peak memory. Returns False where there is no glibc.
    """
    try:
        libc = ctypes.CDLL('libc.so.6')
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_max = -1, -4
    return bool(mallopt(m_mmap_max, 0)) and bool(mallopt(m_trim_threshold, 2**31 - 1))


def _peak_memory_mb(device):
    if device.type == 'cuda':
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process peak RSS


def _step_contexts(device, amp, train):
    """``(autocast, grad)`` context managers of one timed step."""
    dtype = dict(bf16=torch.bfloat16, fp16=torch.float16).get(amp)
    autocast = (torch.autocast(device.type, dtype=dtype) if dtype is not None else
                contextlib.nullcontext())
    return autocast, contextlib.nullcontext() if train else torch.no_grad()


def time_variants(model, variants, batch_size, device='cpu', train=False, amp=None, warmup=3,
                  iters=10):
    """Time variants of ``model`` (image -> tensor(s)) side by side, in interleaved rounds.

    Each round runs one step of every variant (``dict(input_size=(H, W), reference=bool,
    model=optional other module)``: random images ``(B, 3, H, W)``, the readable reference
    attention or not, ``model`` or e.g. its ``torch.compile`` wrapper), so a machine that speeds
    up or slows down during the measurement (shared or throttled CPUs) affects every variant
    alike and their ratios stay fair.

    Args:
        train: time forward + backward (of the sum of the outputs) instead of inference.
        amp: None, ``'bf16'`` or ``'fp16'`` autocast.
    Returns:
        one dict per variant with ``images_per_s``, ``latency_ms`` (p50, p90, p99) and
        ``peak_mem_mb`` (CUDA: the variant's own peak; CPU: the process's peak RSS).
    """
    device = torch.device(device)
    model = model.to(device).train(train)
    autocast, grad = _step_contexts(device, amp, train)

    def make_step(input_size, reference, model):
        x = torch.randn(batch_size, 3, *input_size, device=device)

        def step():
            with use_reference_attention(reference):
                with grad, autocast:
                    out = model(x)
                    out = (out if isinstance(out, torch.Tensor) else
                           sum(o.float().sum() for o in out))
                if train:
                    out.float().sum().backward()
                    model.zero_grad(set_to_none=True)
            if device.type == 'cuda':
                torch.cuda.synchronize(device)

        return step

    steps = [make_step(tuple(v['input_size']), v.get('reference', False), v.get('model', model))
             for v in variants]
    times = [[] for _ in steps]
    peaks = [0.0 for _ in steps]
    for round_index in range(warmup + iters):
        for i, step in enumerate(steps):
            if device.type == 'cuda':
                torch.cuda.reset_peak_memory_stats(device)
            start = time.perf_counter()
            step()
            if round_index >= warmup:
                times[i].append(time.perf_counter() - start)
            peaks[i] = max(peaks[i], _peak_memory_mb(device))
    results = []
    for variant_times, peak in zip(times, peaks):
        ms = np.array(variant_times) * 1000
        results.append(dict(images_per_s=batch_size / (ms.mean() / 1000),
                            latency_ms=dict(p50=float(np.percentile(ms, 50)),
                                            p90=float(np.percentile(ms, 90)),
                                            p99=float(np.percentile(ms, 99))),
                            peak_mem_mb=peak))
    return results


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


# Dense (no sparsity) bf16/fp16 tensor-core peaks in TFLOP/s, from the vendors' data sheets
# (SXM parts); matched against ``torch.cuda.get_device_name``. ``--peak-tflops`` overrides.
DENSE_HALF_PEAK_TFLOPS = {'H200': 989.4, 'H100': 989.4, 'A100': 312.0, 'L40S': 362.1,
                          'A10': 125.0, 'V100': 125.0, 'RTX 4090': 165.2}


def dense_half_peak_tflops(device):
    """The table's peak for a CUDA ``device`` (None when unknown or not CUDA)."""
    device = torch.device(device)
    if device.type != 'cuda':
        return None
    name = torch.cuda.get_device_name(device)
    for key, peak in DENSE_HALF_PEAK_TFLOPS.items():
        if key in name:
            return peak
    return None


def model_flops_per_image(model, input_size, train=False):
    """FLOPs (2 per multiply-add) of one image: the fvcore-style MAC total of
    :func:`stm_mm.analysis.complexity.complexity` (DCNv3 sampling left out), x3 for a training
    step (forward + backward w.r.t. activations and weights)."""
    from .complexity import complexity
    macs = complexity(copy.deepcopy(model).cpu().float(), (1, 3, *input_size))['total']
    return 2 * macs * (3 if train else 1)


def time_stage_mlps(backbone, batch_size, input_size, device='cpu', amp=None, train=True,
                    warmup=3, iters=10):
    """Time the first block's MLP of every stage on that stage's token grid.

    The MLP (``fc2(GELU(fc1(x)))`` on ``(B, H_i, W_i, C_i)``, H_i = H / 2**(i + 2)) is where a
    unified block spends most of its multiply-adds, so its achieved TFLOP/s is the ceiling of the
    whole model's utilisation.
    Returns: one dict per stage with ``stage``, ``tokens``, ``dim``, ``ms`` (mean per call) and
    ``tflops`` (achieved, 2 FLOPs per MAC, x3 with backward).
    """
    device = torch.device(device)
    records = []
    for index, stage in enumerate(backbone.stages):
        mlp = copy.deepcopy(stage.blocks[0].mlp).to(device).train(train)
        size = [s // 2**(index + 2) for s in input_size]
        x = torch.randn(batch_size, *size, mlp.fc1.in_features, device=device,
                        requires_grad=train)
        autocast, grad = _step_contexts(device, amp, train)

        def step():
            with grad, autocast:
                out = mlp(x)
            if train:
                out.backward(torch.ones_like(out))
            if device.type == 'cuda':
                torch.cuda.synchronize(device)

        for _ in range(warmup):
            step()
        start = time.perf_counter()
        for _ in range(iters):
            step()
        seconds = (time.perf_counter() - start) / iters
        tokens = batch_size * size[0] * size[1]
        macs = tokens * 2 * mlp.fc1.in_features * mlp.fc1.out_features
        flops = 2 * macs * (3 if train else 1)
        records.append(dict(stage=index, tokens=tokens, dim=mlp.fc1.in_features,
                            ms=seconds * 1000, tflops=flops / seconds / 1e12))
    return records
