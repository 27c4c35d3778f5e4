"""Export a classifier or a detection backbone to ONNX; --verify checks it with onnxruntime.

    python tools/deployment/pytorch2onnx.py CONFIG [CHECKPOINT] --out FILE.onnx
        [--input-size H [W]] [--batch-size B] [--dynamic] [--opset N] [--part model|backbone] [--verify]

The graph takes the normalised image (the config's mean/std are not in it) and returns the
logits (classifiers) or the backbone's feature maps feat<i> (--part backbone, the part of a
Mask R-CNN config that exports). DCNv3 exports through GridSample: a stock onnxruntime runs
every model, no custom-op library. --dynamic frees batch, height and width; --verify compares
onnxruntime (CPU) with PyTorch at the traced shape and, with --dynamic, at batch 2 and a second
size, and fails above --atol. Errors are one line `error: ...; fix: ...` (exit 2);
--debug shows the traceback. See docs/deployment.md.
"""
import sys

from stm_mm.checkpoint_io import add_checkpoint_tool_options
from stm_mm.deployment.onnx_export import DEFAULT_OPSET, PARTS, check_opset, check_part
from stm_mm.engine.cli import run_cli
from stm_mm.tool_args import ToolArgumentParser, add_batch_size, add_input_size

ATOL = 1e-4


def parse_args(argv=None):
    parser = ToolArgumentParser(__doc__)
    parser.add_argument('config', help='classification or detection config')
    parser.add_argument('checkpoint', nargs='?', default=None,
                        help='checkpoint (ours, or the authors\' converted); default: the '
                        'initialised weights')
    parser.add_argument('--out', required=True, help='the ONNX file to write')
    add_input_size(parser, help='input height and width to trace at (one value: square)')
    add_batch_size(parser, 1, help='batch to trace at')
    parser.add_argument('--dynamic', action='store_true',
                        help='free batch, height and width in the graph')
    parser.add_argument('--opset', type=int, default=DEFAULT_OPSET,
                        help=f'ONNX opset, 16..20 (default {DEFAULT_OPSET})')
    parser.add_argument('--part', choices=PARTS, default=None,
                        help='model (classifier logits; default for classifiers) or backbone '
                        '(feature maps; default for detectors)')
    parser.add_argument('--verify', action='store_true',
                        help='compare onnxruntime (CPU) with PyTorch')
    parser.add_argument('--atol', type=float, default=ATOL,
                        help=f'largest absolute difference --verify accepts (default {ATOL})')
    add_checkpoint_tool_options(parser)
    return parser.parse_args(argv)


def verify_shapes(batch, channels, height, width, dynamic):
    """The traced shape, and with ``dynamic`` batch 2 at a size whose maps need padding."""
    shapes = [(batch, channels, height, width)]
    if dynamic:
        shapes.append((batch + 1, channels, height + 32, width + 64))
    return shapes


def run(args):
    from mmengine.config import Config

    from stm_mm.analysis.loaded_model import load_model, model_kind
    from stm_mm.deployment import export_onnx, exportable, verify_onnx

    check_opset(args.opset)
    kind = model_kind(Config.fromfile(args.config))
    part = args.part or ('model' if kind == 'cls' else 'backbone')
    check_part(kind, part)  # before the (slow) model build
    loaded = load_model(args.config, args.checkpoint)
    module, names = exportable(loaded, part)
    shape = (args.batch_size, loaded.in_channels, *args.input_size)
    export_onnx(module, args.out, names, shape, dynamic=args.dynamic, opset=args.opset)
    shapes = 'dynamic' if args.dynamic else 'fixed'
    print(f'wrote {args.out} ({part}, {shapes} shape, traced at {shape}, opset {args.opset}; '
          f'outputs {", ".join(names)})')
    if not args.verify:
        return 0
    worst = 0.0
    for tested, diff, scale in verify_onnx(module, args.out,
                                           verify_shapes(*shape, args.dynamic)):
        print(f'verify {tested}: max |onnxruntime - pytorch| = {diff:.2e} '
              f'(max |pytorch| = {scale:.3g})')
        worst = max(worst, diff)
    if worst > args.atol:
        print(f'error: onnxruntime and PyTorch differ by {worst:.2e} > {args.atol:.0e}; fix: '
              'report it with the config (see docs/deployment.md)', file=sys.stderr)
        return 1
    print(f'verified: onnxruntime matches PyTorch within {args.atol:.0e}')
    return 0


def main(argv=None):
    """Errors end the process with one line `error: ...; fix: ...` and exit code 2
    (stm_mm.engine.cli); a failed --verify returns 1."""
    return run_cli(run, parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())
