"""Export a config's model to ONNX (TorchScript exporter) and check it with onnxruntime.

What is exported: a classifier as ``input (B, C, H, W) -> logits (B, num_classes)``; a
backbone (``part='backbone'``, the only part of a detector that exports) as
``input -> feat<i> (B, C_i, H_i, W_i)`` for its ``out_indices``. The input is the normalised
image (the config's ``data_preprocessor`` mean/std are not in the graph). With ``dynamic``,
batch, height and width are free; otherwise the graph is fixed to the traced shape.
"""
import warnings

import numpy as np
import torch

from ..models.image_to_logits import ImageToLogits
from .export_safe import export_safe
from .symbolic import dynamic_symbolics

MIN_OPSET = 16  # GridSample (DCNv3's bilinear sampling) is an ONNX op from opset 16
MAX_OPSET = 20  # the newest opset of torch's TorchScript exporter
DEFAULT_OPSET = 17
PARTS = ('model', 'backbone')


def check_part(kind, part):
    """Raise ValueError unless ``part`` of a model of ``kind`` (``'cls'``, ``'det'``,
    ``'backbone'``) exports; the full Mask R-CNN does not (see ``docs/deployment.md``)."""
    if part not in PARTS:
        raise ValueError(f'part must be one of {PARTS}, got {part!r}')
    if part == 'model' and kind == 'det':
        raise ValueError('the full Mask R-CNN does not export (mmdet 3.3 imports its removed '
                         'mmdet.core.export while exporting; see docs/deployment.md); fix: '
                         'export the backbone with --part backbone')


def exportable(loaded, part='model'):
    """The module to export from a :class:`stm_mm.analysis.loaded_model.LoadedModel` and its output
    names (errors of :func:`check_part`)."""
    check_part(loaded.kind, part)
    if part == 'model' and loaded.kind == 'cls':
        return ImageToLogits(loaded.model).eval(), ['logits']
    backbone = loaded.backbone
    names = [f'feat{i}' for i in backbone.out_indices]
    return backbone.eval(), names


def example_input(batch, channels, height, width, seed=0):
    """A reproducible standard-normal input ``(batch, channels, height, width)``."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, channels, height, width, generator=generator)


def check_opset(opset):
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ValueError(f'--opset {opset} is not supported; fix: use {MIN_OPSET}..'
                         f'{MAX_OPSET} (GridSample needs >= {MIN_OPSET}; {MAX_OPSET} is the '
                         "newest of torch's TorchScript exporter)")


def export_onnx(module, out, output_names, input_shape, dynamic=False, opset=DEFAULT_OPSET):
    """Write ``module`` to the ONNX file ``out``, traced at ``input_shape`` ``(B, C, H, W)``.

    ``dynamic`` frees batch, height and width (of the input and of every output map).
    """
    check_opset(opset)
    dynamic_axes = None
    if dynamic:
        dynamic_axes = {'input': {0: 'batch', 2: 'height', 3: 'width'}}
        for name in output_names:
            axes = {0: 'batch'}
            if name.startswith('feat'):
                axes.update({2: f'{name}_height', 3: f'{name}_width'})
            dynamic_axes[name] = axes
    x = example_input(*input_shape)
    with torch.no_grad(), export_safe(), dynamic_symbolics(opset), \
            warnings.catch_warnings():
        # size checks and Python decisions that are the same at every size are traced as
        # constants; the exporter warns about each of them
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        torch.onnx.export(module, (x, ), out, dynamo=False, opset_version=opset,
                          input_names=['input'], output_names=list(output_names),
                          dynamic_axes=dynamic_axes, do_constant_folding=True)


def onnx_session(path, threads=None, spinning=True):
    """An onnxruntime CPU session of ``path``.

    Args:
        threads: intra-op threads (default: onnxruntime's, one per core).
        spinning: let idle worker threads spin-wait for the next run (onnxruntime's default);
            False frees their cores at once (fair next to PyTorch in one process).
    """
    import onnxruntime as ort
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    if not spinning:
        options.add_session_config_entry('session.intra_op.allow_spinning', '0')
    return ort.InferenceSession(str(path), options, providers=['CPUExecutionProvider'])


def verify_onnx(module, path, input_shapes, seed=0):
    """Run ``module`` (PyTorch, its normal fast paths) and the ONNX file on CPU on each shape.

    Returns one ``(shape, max_abs_diff, max_abs_value)`` per shape: the largest difference over
    all outputs (an output whose shape differs counts as an infinite difference) and the
    largest PyTorch value, the scale the difference is to be read against.
    """
    session = onnx_session(path)
    results = []
    for index, shape in enumerate(input_shapes):
        x = example_input(*shape, seed=seed + index)
        with torch.no_grad():
            expected = module(x)
        expected = expected if isinstance(expected, (tuple, list)) else (expected, )
        got = session.run(None, {'input': x.numpy()})
        diff = scale = 0.0
        for e, g in zip(expected, got):
            e = e.numpy()
            diff = max(diff, float(np.abs(e - g).max()) if e.shape == g.shape else float('inf'))
            scale = max(scale, float(np.abs(e).max()))
        results.append((tuple(shape), diff, scale))
    return results
