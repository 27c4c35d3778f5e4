"""Time every implementation of the Halo, Swin and DCNv3 mixers side by side, stage by stage.

    python tools/analysis_tools/benchmark_mixers.py [--stms halo swin dcnv3] [--arch tiny] \
        [--batch-size 128] [--input-size 224 [224]] [--dtypes bf16 fp32] [--modes train] \
        [--impls sdpa triton] [--device cuda] [--json out.json]

Each mixer of a stage of the ``--arch`` model gets random weights; its implementations
(``halo``/``swin``: sdpa, triton, reference; ``dcnv3``: compiled, triton, pytorch) run the same
input in interleaved rounds. The first one listed is the baseline of the speedup column.
``--dry-run`` runs a CPU-sized version (batch 1, 32x32 input, stage 1, training steps, one
round, Triton under its interpreter) that checks the tool and every implementation end to end.
"""
import json
import os

import torch

from stm_mm.analysis.mixer_benchmark import (DTYPES, MIXER_IMPLS, format_records, stage_cases,
                                             time_mixer)
from stm_mm.engine.cli import run_cli
from stm_mm.tool_args import (ToolArgumentParser, add_batch_size, add_device, add_input_size,
                              add_json)


def parse_args(argv=None):
    parser = ToolArgumentParser(__doc__.split('\n')[0])
    parser.add_argument('--stms', nargs='+', default=list(MIXER_IMPLS), choices=list(MIXER_IMPLS))
    parser.add_argument('--arch', default='tiny', choices=['micro', 'tiny', 'small', 'base'])
    add_batch_size(parser, 128)
    add_input_size(parser)
    parser.add_argument('--stages', type=int, nargs='+', choices=[1, 2, 3, 4],
                        default=[1, 2, 3, 4])
    parser.add_argument('--dtypes', nargs='+', default=['bf16', 'fp32'], choices=list(DTYPES))
    parser.add_argument('--modes', nargs='+', default=['train', 'inference'],
                        choices=['train', 'inference'])
    parser.add_argument('--impls', nargs='+',
                        help='implementations to compare, baseline first (default: all of each '
                        'mixer that can run on the device)')
    add_device(parser)
    parser.add_argument('--warmup', type=int, default=5)
    parser.add_argument('--iters', type=int, default=20)
    parser.add_argument('--dry-run', action='store_true',
                        help='CPU-sized check of every implementation (Triton interpreted)')
    add_json(parser)
    return parser.parse_args(argv)


def runnable_impls(stm, requested, device):
    """The implementations of ``stm`` to time: ``requested`` (those it has), or all that can run
    on ``device`` (compiled DCNv3 only where the extension is built for it)."""
    from stm_mm.ops import dcnv3_available
    from stm_mm.ops.triton import triton_unavailable_reason
    impls = [i for i in (requested or MIXER_IMPLS[stm]) if i in MIXER_IMPLS[stm]]
    if requested is None:
        if triton_unavailable_reason(device) is not None:
            impls.remove('triton')
        if stm == 'dcnv3' and not dcnv3_available(device):
            impls.remove('compiled')
    if not impls:
        raise ValueError(f'--impls {" ".join(requested)} names no implementation of {stm} '
                         f'({", ".join(MIXER_IMPLS[stm])}); fix: pick from those')
    return impls


def run(args):
    if args.dry_run:
        if args.device != 'cpu':
            raise ValueError('--dry-run is the CPU check; fix: add --device cpu')
        # the interpreter must be on before any kernel module is imported
        os.environ.setdefault('TRITON_INTERPRET', '1')
        args.batch_size, args.input_size, args.warmup, args.iters = 1, (32, 32), 0, 1
        args.dtypes, args.stages, args.modes = ['fp32'], [1], ['train']
    device = torch.device(args.device)
    if device.type == 'cuda':
        print(f'device: {torch.cuda.get_device_name(device)}, torch {torch.__version__}')
    records = []
    for stm in args.stms:
        impls = runnable_impls(stm, args.impls, device)
        for case in stage_cases(stm, args.arch, args.batch_size, args.input_size):
            if case['stage'] not in args.stages:
                continue
            for dtype in args.dtypes:
                for mode in args.modes:
                    records += time_mixer(case, impls, device, dtype, mode == 'train',
                                          args.warmup, args.iters)
    print(format_records(records))
    if args.json:
        device_name = (torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu')
        for r in records:
            r['device'] = device_name
        with open(args.json, 'w') as f:
            json.dump(records, f, indent=2)
    return records


def main(argv=None):
    return run_cli(run, parse_args(argv))


if __name__ == '__main__':
    main()
