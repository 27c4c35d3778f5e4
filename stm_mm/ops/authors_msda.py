"""The authors' deformable sampling kernel as a benchmark baseline: mmcv's multi-scale deformable
attention (MSDA) CUDA source, which InternImage's DCNv3 kernel was derived from, built alone.

:func:`load_authors_msda` compiles mmcv's installed ``ops/csrc/pytorch/cuda/ms_deform_attn_cuda.cu``
with a small binding (``ops/bench/``) through ``torch.utils.cpp_extension.load`` (nvcc needed,
no GPU for the build). :func:`msda_inputs` turns a DCNv3 call into the same sampling for MSDA
(one level, the group as head, softmaxed weights), so both kernels gather the same points.
MSDA has no bfloat16 kernel: bf16 cases run it in float16.
"""
import os

import torch

from .dcnv3_ref import sampling_locations

_BENCH_SOURCES = os.path.join(os.path.dirname(__file__), '..', '..', 'ops', 'bench')
_module = None


def mmcv_msda_source():
    """Path of mmcv's ``ms_deform_attn_cuda.cu`` and its csrc folder; FileNotFoundError naming
    the fix when the installed mmcv does not ship its sources."""
    import mmcv
    csrc = os.path.join(os.path.dirname(mmcv.__file__), 'ops', 'csrc')
    source = os.path.join(csrc, 'pytorch', 'cuda', 'ms_deform_attn_cuda.cu')
    if not os.path.isfile(source):
        raise FileNotFoundError(f'{source} not found: this mmcv install has no CUDA sources; '
                                'fix: install mmcv from its source distribution')
    return source, csrc


def _cuda_library_headers():
    """Include folders of the CUDA library wheels torch depends on (``nvidia/*/include``): a
    CUDA toolkit without e.g. cuSPARSE's headers still compiles ATen's CUDA headers with them."""
    try:
        import nvidia
    except ImportError:
        return []
    roots = [os.path.join(path, name, 'include') for path in nvidia.__path__
             for name in sorted(os.listdir(path))]
    return [root for root in roots if os.path.isfile(os.path.join(root, 'cusparse.h'))]


def load_authors_msda(verbose=False):
    """Build (once per process; cached on disk by torch) and import the MSDA extension."""
    global _module
    if _module is None:
        from torch.utils.cpp_extension import load
        source, csrc = mmcv_msda_source()
        bench = os.path.abspath(_BENCH_SOURCES)
        _module = load(
            name='stm_mm_authors_msda',
            sources=[os.path.join(bench, 'authors_msda_binding.cpp'), source],
            extra_include_paths=[os.path.join(bench, 'include'), os.path.join(csrc, 'common'),
                                 os.path.join(csrc, 'common', 'cuda'),
                                 *_cuda_library_headers()],
            verbose=verbose)
    return _module


def msda_inputs(input, offset, mask, kernel_size=3, pad=1, offset_scale=1.0):
    """MSDA inputs that sample what a stride-1 DCNv3 call samples.

    ``input (B, H, W, G*Cg)``, ``offset (B, H, W, G*P*2)``, ``mask (B, H, W, G*P)`` (softmaxed)
    -> ``value (B, H*W, G, Cg)``, ``spatial_shapes (1, 2)``, ``level_start_index (1,)``,
    ``sampling_loc (B, H*W, G, 1, P, 2)`` normalised so that MSDA's ``loc * size - 0.5`` is
    DCNv3's pixel coordinate, ``attn_weight (B, H*W, G, 1, P)``.
    """
    B, H, W, C = input.shape
    G = mask.shape[-1] // (kernel_size * kernel_size)
    loc = sampling_locations(H, W, offset, kernel_size, kernel_size, 1, 1, pad, pad, 1, 1, G,
                             offset_scale)  # (B, H, W, G, P, 2) pixels
    size = torch.tensor([W, H], device=input.device, dtype=loc.dtype)
    loc = (loc + 0.5) / size
    value = input.reshape(B, H * W, G, C // G).contiguous()
    shapes = torch.tensor([[H, W]], device=input.device, dtype=torch.long)
    start = torch.zeros(1, device=input.device, dtype=torch.long)
    return (value, shapes, start, loc.reshape(B, H * W, G, 1, -1, 2).contiguous(),
            mask.reshape(B, H * W, G, 1, -1).contiguous())
