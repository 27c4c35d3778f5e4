"""Where a step spends its time: ``torch.profiler`` self times by op and by category.

One step (forward, and with ``train`` a backward of the summed outputs) runs under the profiler.
Every op's *self* time (its time minus that of the ops it calls) is attributed to the forward or
the backward pass and to one category of :data:`CATEGORIES`. A backward op inherits the category
of the forward op whose autograd node it runs (matched by the autograd sequence number), so the
gradient of an MLP's ``addmm`` counts as an MLP matmul and that of a bias gather as position bias.

Forward ops are classified by name, refined by the module or method they run in: MLP modules
(``Mlp``) and the mixers' position-bias methods (:data:`BIAS_METHODS`) are wrapped in profiler
ranges for the duration of the measurement only.
"""
import contextlib
import functools
from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from ..models.utils import Mlp

CATEGORIES = ('attention', 'position bias and masks', 'layout copies', 'norms', 'MLP matmuls',
              'other matmuls and convs', 'elementwise', 'DCNv3 op')
# methods of the mixers that build position biases / masks (readable and fast forms)
BIAS_METHODS = ('relative_terms', 'relative_logits', 'relative_logits_reference', 'position_bias')
_MLP_SCOPE, _BIAS_SCOPE = 'stm_mm.scope.mlp', 'stm_mm.scope.position_bias'
_PHASES = ('stm_mm.phase.forward', 'stm_mm.phase.backward')
_ATTENTION = ('scaled_dot_product', 'softmax', 'bmm', 'baddbmm')
_NORMS = ('layer_norm', 'batch_norm')
_MATMULS = ('addmm', 'aten::mm', 'matmul', 'linear', 'conv', 'mkldnn_convolution')
_LAYOUT = ('permute', 'contiguous', 'copy_', 'clone', 'index_select', 'gather', 'scatter', 'cat',
           'pad', 'roll', 'unfold', 'view', 'reshape', 'expand', 'transpose', 'select', 'slice',
           'split', 'unbind', 'index', 'stack', 'narrow', 'as_strided', 'empty', 'zero_',
           'fill_', 'col2im', 'im2col')


def categorise(name, scopes):
    """The category of a forward op ``name`` run inside the profiler ranges ``scopes``."""
    if 'dcnv3' in name.lower():
        return 'DCNv3 op'
    if _BIAS_SCOPE in scopes:
        return 'position bias and masks'
    if any(key in name for key in _ATTENTION) or any(_node_category(s) for s in scopes):
        return 'attention'
    if any(key in name for key in _NORMS):
        return 'norms'
    if any(key in name for key in _MATMULS):
        return 'MLP matmuls' if _MLP_SCOPE in scopes else 'other matmuls and convs'
    if any(key in name for key in _LAYOUT):
        return 'layout copies'
    return 'elementwise'


def _scoped(fn, scope):

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with record_function(scope):
            return fn(*args, **kwargs)

    return wrapper


@contextlib.contextmanager
def profiling_scopes(model):
    """Within the context, the MLPs and the position-bias methods of ``model`` run inside
    profiler ranges that :func:`categorise` recognises."""
    patched = []
    for module in model.modules():
        if isinstance(module, Mlp):
            patched.append((module, 'forward'))
            module.forward = _scoped(module.forward, _MLP_SCOPE)
        for method in BIAS_METHODS:
            if callable(getattr(module, method, None)):
                patched.append((module, method))
                setattr(module, method, _scoped(getattr(module, method), _BIAS_SCOPE))
    try:
        yield
    finally:
        for module, method in patched:
            delattr(module, method)  # the instance attribute; the class method shows again


def _ancestors(event):
    names = []
    while event is not None:
        names.append(event.name)
        event = event.cpu_parent
    return names


def summarise(events, top=10):
    """Per phase (``'forward'``, ``'backward'``): total self time (ms), the ``top`` ops by self
    time and the share of every category. ``events``: a profile's ``events()``."""
    forward_category = {}  # autograd sequence number -> category of the op that made the node
    rows = []
    for event in events:
        chain = _ancestors(event)
        phase = next((p for p in _PHASES if p in chain), None)
        if phase is None or event.name in _PHASES:
            continue
        if phase == _PHASES[0]:
            category = categorise(event.name, chain)
            if event.sequence_nr >= 0:
                forward_category.setdefault(event.sequence_nr, category)
        else:
            node = next((e for e in _parents(event) if 'evaluate_function' in e.name), None)
            category = None if node is None else ('node', node.sequence_nr, node.name)
        rows.append((phase, event.name, category, event.self_cpu_time_total / 1000))
    summary = {}
    for phase in _PHASES:
        by_op, by_node = defaultdict(float), defaultdict(float)
        by_category = dict.fromkeys(CATEGORIES, 0.0)
        for row_phase, name, category, ms in rows:
            if row_phase != phase:
                continue
            if isinstance(category, tuple):  # backward: the forward op's category
                _, seq, node_name = category
                by_node[node_name.rsplit(': ', 1)[-1]] += ms
                category = (_node_category(node_name) or forward_category.get(seq) or
                            categorise(node_name, ()))
            elif category is None:
                category = categorise(name, ())
            by_op[name] += ms
            by_category[category] += ms
        total = sum(by_op.values())
        ops = sorted(by_op.items(), key=lambda item: -item[1])[:top]
        summary[phase.rsplit('.', 1)[-1]] = dict(
            total_ms=total,
            top_ops=[dict(op=name, self_ms=ms, share=ms / total) for name, ms in ops],
            categories={c: dict(self_ms=ms, share=ms / total if total else 0.0)
                        for c, ms in by_category.items()})
        if by_node:
            nodes = sorted(by_node.items(), key=lambda item: -item[1])[:top]
            summary[phase.rsplit('.', 1)[-1]]['top_autograd_nodes'] = [
                dict(node=name, self_ms=ms, share=ms / total) for name, ms in nodes]
    return summary


def _node_category(node_name):
    """The category of a whole fused op's autograd node or function range (custom attention
    functions, SDPA, DCNv3): their inner ops run without autograd and leave no sequence
    number to match."""
    if 'dcnv3' in node_name.lower():
        return 'DCNv3 op'
    if 'Attention' in node_name or 'ScaledDotProduct' in node_name:
        return 'attention'
    return None


def _parents(event):
    while event is not None:
        yield event
        event = event.cpu_parent


def profile_step(model, batch_size, input_size, train=True, warmup=2, top=10):
    """Profile one step of ``model`` (image -> tensor(s)) on the CPU after ``warmup`` steps.

    Returns :func:`summarise`'s dict (``forward`` and, with ``train``, ``backward``).
    """
    model = model.train(train)
    x = torch.randn(batch_size, 3, *input_size)

    def step():
        with record_function(_PHASES[0]), torch.set_grad_enabled(train):
            out = model(x)
            out = out if isinstance(out, torch.Tensor) else sum(o.sum() for o in out)
            loss = out.sum()
        if train:
            with record_function(_PHASES[1]):
                loss.backward()
            model.zero_grad(set_to_none=True)

    with profiling_scopes(model):
        for _ in range(warmup):
            step()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            step()
    summary = summarise(prof.events(), top)
    if not train:
        summary.pop('backward')
    return summary


def format_summary(summary):
    """Printable lines: every phase's top ops and category shares."""
    lines = []
    for phase, s in summary.items():
        lines.append(f'  {phase}: {s["total_ms"]:.0f} ms self time')
        for c, v in sorted(s['categories'].items(), key=lambda item: -item[1]['self_ms']):
            if v['self_ms'] > 0:
                lines.append(f'    {c:<26}{v["self_ms"]:>9.1f} ms {100 * v["share"]:>5.1f}%')
        lines.append('    top ops by self time:')
        for r in s['top_ops']:
            lines.append(f'      {r["op"]:<60}{r["self_ms"]:>9.1f} ms {100 * r["share"]:>5.1f}%')
        if 'top_autograd_nodes' in s:
            lines.append('    top autograd nodes by self time of their ops:')
            for r in s['top_autograd_nodes']:
                lines.append(f'      {r["node"]:<60}{r["self_ms"]:>9.1f} ms '
                             f'{100 * r["share"]:>5.1f}%')
    return lines
