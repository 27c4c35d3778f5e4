"""Effective receptive field of every stage (paper section 6, Fig. 6).

    python tools/analysis_tools/erf.py CONFIG CHECKPOINT [--data DIR|digits|noise]
        [--num-images N] [--input-size S] [--out-dir DIR] [--compare CONFIG:CKPT[:LABEL] ...]

CHECKPOINT may be `none` (initialised weights). Writes DIR/erf.json ({"0": ERF@50, ..., "3": ...}
of the first model), DIR/erf_stage{i}.png, DIR/erf_details.json, DIR/erf_maps.npz and, with
--compare, DIR/erf_compare.png (one row per model) + DIR/erf_compare.json. See docs/analysis.md.
"""
import os

from stm_mm.analysis.erf_report import run_erf
from stm_mm.analysis.loaded_model import parse_model_spec
from stm_mm.checkpoint_io import add_checkpoint_tool_options
from stm_mm.engine.cli import run_cli
from stm_mm.tool_args import ToolArgumentParser, add_batch_size, add_device, add_input_size


def parse_args(argv=None):
    parser = ToolArgumentParser(__doc__)
    parser.add_argument('config', help='classification or detection config')
    parser.add_argument('checkpoint', help='checkpoint file, or "none" for initialised weights')
    parser.add_argument('--data', default='digits',
                        help='image folder (searched recursively), "digits" (sklearn digits, '
                        'upscaled; default) or "noise" (generated images)')
    parser.add_argument('--num-images', type=int, default=8,
                        help='images to average over (default 8; RepLKNet used 50)')
    add_input_size(parser, help='input side (square: one value, or H W with H = W)')
    parser.add_argument('--out-dir', default='work_dirs/erf')
    parser.add_argument('--compare', nargs='+', default=[], metavar='CONFIG:CKPT[:LABEL]',
                        help='more models drawn next to the first one in erf_compare.png')
    parser.add_argument('--label', help='name of the first model in figures')
    add_batch_size(parser, 4)
    parser.add_argument('--response', choices=['relu', 'sum'], default='relu',
                        help='centre-unit response: channel sum of the rectified output '
                        '(RepLKNet; default) or the plain channel sum (identically zero after '
                        'a LayerNorm with unit weight and zero bias, see docs/analysis.md)')
    add_device(parser)
    parser.add_argument('--no-progress', action='store_true')
    parser.add_argument('--threads', type=int, default=None,
                          help='CPU threads of torch (1 is much faster on a busy machine)')
    add_checkpoint_tool_options(parser)
    args = parser.parse_args(argv)
    if args.input_size[0] != args.input_size[1]:
        parser.error(f'the ERF is measured on square inputs, got --input-size '
                     f'{args.input_size[0]} {args.input_size[1]}; fix: give one value')
    return args


def run(args):
    os.environ.setdefault('STM_MM_DCNV3_IMPL', 'auto')
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    models = [(args.config, args.checkpoint, args.label)]
    models += [parse_model_spec(s) for s in args.compare]
    run_erf(models, args.out_dir, data=args.data, num_images=args.num_images,
            input_size=args.input_size[0], batch_size=args.batch_size, device=args.device,
            relu=args.response == 'relu', progress=not args.no_progress)
    print(f'[erf] wrote {args.out_dir}/erf.json and figures')


def main(argv=None):
    """Errors end the process with one line ``error: ...`` and exit code 2 (``--debug``:
    the traceback)."""
    run_cli(run, parse_args(argv))


if __name__ == '__main__':
    main()
