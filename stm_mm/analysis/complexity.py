"""Parameters and MACs of a model, split the ways the paper's Table IV mixes them.

MACs (one multiply-add = 1, the paper's "FLOPs") come from MMEngine's ``FlopAnalyzer`` (a port
of fvcore) with two handles added: fused attention (``scaled_dot_product_attention``: the
``q @ k^T`` and ``attn @ v`` products) and ``mean`` (global pooling). The result is broken down
into categories so each paper convention can be reproduced:

* ``conv``, ``linear``: convolution and fully-connected MACs;
* ``attention``: q@k and attn@v products, plus Halo's query-related position logits;
* ``norm``: LayerNorm at 5 and BatchNorm at 2 per element (fvcore's convention);
* ``sampling``: DCNv3's bilinear sampling (4 per sampled value);
* ``other``: pooling.

The paper's Halo, PVT and DW-Conv rows equal ``conv + linear + 2/5 * layer norm`` (attention
products left out); its Swin and DCNv3 rows are close to the fvcore-style ``total`` without
``sampling`` (the authors' own fvcore measurements).
"""
import re
from collections import Counter

import torch
from mmengine.analysis import FlopAnalyzer
from mmengine.analysis.jit_handles import get_shape

from ..models.image_to_logits import ImageToLogits

_CATEGORY = {
    'conv': 'conv', 'linear': 'linear', 'addmm': 'linear', 'scaled_dot_product_attention':
    'attention', 'matmul': 'attention', 'bmm': 'attention', 'einsum': 'attention',
    'layer_norm': 'layer_norm', 'batch_norm': 'batch_norm', 'grid_sampler': 'sampling',
    'mean': 'other', 'adaptive_avg_pool2d': 'other', 'upsample_bilinear2d': 'other'
}


def _sdpa_macs(inputs, outputs):
    q, k, v = (get_shape(t) for t in inputs[:3])
    batch = 1
    for n in q[:-2]:
        batch *= n
    return batch * q[-2] * k[-2] * (q[-1] + v[-1])


def _mean_macs(inputs, outputs):
    count = 1
    for n in get_shape(inputs[0]):
        count *= n
    return count


_NOT_HOOK_COUNTED = re.compile(r'(gamma[12]|pos_embed\.weight|relative_position_bias_table)$')


def hook_style_parameter_count(model):
    """Parameters a hook-based counter (thop/ptflops/mmcv) finds in the authors' models: all but
    layer scales, PVT position embeddings and Swin bias tables, which the authors keep outside
    leaf modules (the convention of Table IV's Halo, PVT and DW-Conv rows)."""
    return sum(p.numel() for name, p in model.named_parameters()
               if not _NOT_HOOK_COUNTED.search(name))


def complexity(model, input_shape=(1, 3, 224, 224)):
    """Counts for ``model`` (a backbone or an mmpretrain classifier) on one input.

    Returns a dict: ``params``, ``params_hook_style``, MACs per category (see the module docstring),
    ``total`` (everything but sampling, fvcore style) and ``paper_local`` (conv + linear +
    LayerNorm at 2 per element).
    """
    model = model.eval()
    inputs = torch.randn(*input_shape)
    if hasattr(model, 'extract_feat'):
        model = ImageToLogits(model)
    analyzer = FlopAnalyzer(model, inputs)
    analyzer.set_op_handle('aten::scaled_dot_product_attention', _sdpa_macs,
                           'aten::mean', _mean_macs)
    analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    with torch.no_grad():  # the inference graph: training paths may be opaque autograd functions
        by_op = analyzer.by_operator()
    counts = Counter()
    for op, macs in by_op.items():
        counts[_CATEGORY.get(op, 'other')] += int(macs)
    result = dict(params=sum(p.numel() for p in model.parameters()),
                  params_hook_style=hook_style_parameter_count(model))
    for key in ('conv', 'linear', 'attention', 'layer_norm', 'batch_norm', 'sampling', 'other'):
        result[key] = counts[key]
    result['total'] = sum(v for k, v in counts.items() if k != 'sampling')
    result['paper_local'] = counts['conv'] + counts['linear'] + counts['layer_norm'] * 2 // 5
    return result


def halo_unused_table_macs(model, input_shape=(1, 3, 224, 224)):
    """MACs Halo spends scoring relative-position table rows its queries never use.

    ``HaloAttention`` scores every query against all ``2w - 1`` rows of its height and width
    tables in one matmul (as the authors' code does) and keeps the ``w`` rows per axis that
    each query needs. Subtracting this from ``attention`` gives the count of the rows used,
    which is what the paper's Table VII Halo rows correspond to.
    """
    from ..models.mixers.halo import HaloAttention
    unused = []

    def hook(module, inputs, output):
        B, H, W, _ = inputs[0].shape
        b, w = module.block_size, module.window_size
        tokens = B * -(-H // b) * b * -(-W // b) * b
        unused.append(tokens * module.num_heads * module.dim_qk * 2 * (w - 1))

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, HaloAttention)]
    model = ImageToLogits(model) if hasattr(model, 'extract_feat') else model
    try:
        with torch.no_grad():
            model.eval()(torch.randn(*input_shape))
    finally:
        for handle in handles:
            handle.remove()
    return sum(unused)
