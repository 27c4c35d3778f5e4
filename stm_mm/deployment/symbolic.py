"""ONNX symbolic helpers that the TorchScript exporter lacks for dynamic shapes.

The stock ``aten::unfold`` symbolic needs the unfolded dimension's size at export time (it
writes an ONNX ``Loop`` over a fixed count); Halo attention unfolds maps whose size depends on
the input. :func:`unfold_symbolic` writes the same windows as one ``Gather`` with an index
computed in the graph, so the size may vary.
"""
import contextlib

import torch
from torch.onnx import register_custom_op_symbolic, unregister_custom_op_symbolic


def unfold_symbolic(g, input, dimension, size, step):
    """``x.unfold(dim, size, step)``: ``(..., L, ...)`` -> ``(..., (L - size) // step + 1, ...,
    size)``; window ``i`` holds elements ``i * step .. i * step + size - 1`` along ``dim``."""
    from torch.onnx.symbolic_helper import _get_const, _get_tensor_rank

    dim = _get_const(dimension, 'i', 'dimension')
    size = _get_const(size, 'i', 'size')
    step = _get_const(step, 'i', 'step')
    rank = _get_tensor_rank(input)
    dim = dim % rank

    def const(value):
        return g.op('Constant', value_t=torch.tensor(value, dtype=torch.int64))

    length = g.op('Gather', g.op('Shape', input), const(dim), axis_i=0)
    count = g.op('Add', g.op('Div', g.op('Sub', length, const(size)), const(step)), const(1))
    starts = g.op('Mul', g.op('Range', const(0), count, const(1)), const(step))
    index = g.op('Add', g.op('Unsqueeze', starts, const([1])), const([list(range(size))]))
    windows = g.op('Gather', input, index, axis_i=dim)  # (..., count, size, ...) at dim
    perm = [i for i in range(rank + 1) if i != dim + 1] + [dim + 1]
    return g.op('Transpose', windows, perm_i=perm)


@contextlib.contextmanager
def dynamic_symbolics(opset_version):
    """Within the context the exporter at ``opset_version`` uses the symbolics above."""
    register_custom_op_symbolic('aten::unfold', unfold_symbolic, opset_version)
    try:
        yield
    finally:
        unregister_custom_op_symbolic('aten::unfold', opset_version)
