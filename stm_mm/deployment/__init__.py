"""Deployment: ONNX export of the classifiers and backbones, checked with onnxruntime."""
from .onnx_export import (DEFAULT_OPSET, PARTS, example_input, export_onnx, exportable,
                          onnx_session, verify_onnx)

__all__ = ['DEFAULT_OPSET', 'PARTS', 'example_input', 'export_onnx', 'exportable',
           'onnx_session', 'verify_onnx']
