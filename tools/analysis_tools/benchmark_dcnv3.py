"""Time DCNv3's implementations side by side at U-InternImage-tiny's stage shapes.

    python tools/analysis_tools/benchmark_dcnv3.py [--impls triton compiled pytorch authors_msda]
        [--dtypes float32 bfloat16] [--quick] [--dry-run] [--device cpu|cuda] [--threads N]
        [--repeats N] [--json out.json]

Every implementation runs the mixer's call (softmax over the 9 points, then DCNv3) in one
process, interleaved in each timed round: forward (no grad) and forward+backward, median
milliseconds over the rounds. Cases: batch 16 at 224x224 (maps 56, 28, 14, 7) and, unless
--quick, batch 2 at 800x1216 (maps 200x304 ... 25x38); --dry-run: one tiny case, one round,
no warm-up (on the CPU the Triton kernels run under Triton's interpreter, so that CI can
exercise the tool). The table shows the last impl's time over each other impl's (their speed-up over it).
Defaults: on cuda triton, compiled and pytorch in float32 and bfloat16; on cpu compiled and
pytorch in float32. ``authors_msda`` (CUDA only) is the authors' kernel family: mmcv's
multi-scale deformable attention CUDA source built alone (nvcc needed), sampling the same
points, timed without the softmax and location set-up (float16 in the bfloat16 cases).
"""
import json
import os

import torch

from stm_mm.engine.cli import run_cli
from stm_mm.ops import dcnv3_available
from stm_mm.ops.benchmark import DRY_RUN_CASE, benchmark_cases, format_table, run_benchmark
from stm_mm.ops.triton import triton_unavailable_reason
from stm_mm.tool_args import ToolArgumentParser, add_device, add_json

IMPLS = ('triton', 'compiled', 'pytorch', 'authors_msda')
DTYPES = dict(float32=torch.float32, bfloat16=torch.bfloat16, float16=torch.float16)


def parse_args(argv=None):
    parser = ToolArgumentParser(__doc__.split('\n')[0])
    add_device(parser)
    parser.add_argument('--impls', nargs='+', choices=IMPLS,
                        help='implementations, in table order (default: see above)')
    parser.add_argument('--dtypes', nargs='+', choices=list(DTYPES),
                        help='dtypes (default: float32 bfloat16 on cuda, float32 on cpu)')
    parser.add_argument('--quick', action='store_true',
                        help='only the 224x224 cases, with fewer repeats')
    parser.add_argument('--dry-run', action='store_true',
                        help='one tiny case, one round: checks that everything runs')
    parser.add_argument('--repeats', type=int, help='timed runs per case (default 5, quick 2)')
    parser.add_argument('--threads', type=int, help='CPU threads (default: torch\'s default)')
    add_json(parser)
    return parser.parse_args(argv)


def check_available(impls, device):
    """Raise ``ValueError`` when a requested implementation cannot run on ``device``."""
    if 'triton' in impls and device == 'cpu':
        os.environ.setdefault('TRITON_INTERPRET', '1')  # before the kernels are imported
    if 'triton' in impls and triton_unavailable_reason(device) is not None:
        raise ValueError(f'the Triton DCNv3 kernels cannot run: '
                         f'{triton_unavailable_reason(device)}')
    if 'authors_msda' in impls and not device.startswith('cuda'):
        raise ValueError('authors_msda is a CUDA kernel; fix: use --device cuda')
    if 'compiled' in impls and not dcnv3_available(device):
        raise ValueError(f'the compiled DCNv3 op is not available on {device}; fix: build it '
                         'with `pip install -e .` (FORCE_CUDA=1 for CUDA)')


def run(args):
    cuda = args.device.startswith('cuda')
    impls = args.impls or (IMPLS[:3] if cuda else IMPLS[1:3])
    dtypes = [DTYPES[d] for d in args.dtypes or (('float32', 'bfloat16') if cuda else
                                                  ('float32', ))]
    check_available(impls, args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats = 1 if args.dry_run else args.repeats or (2 if args.quick else 5)
    cases = [DRY_RUN_CASE] if args.dry_run else benchmark_cases(args.quick)
    threads = f', {torch.get_num_threads()} threads' if not cuda else ''
    print(f'DCNv3 on {args.device}{threads}, median of {repeats} interleaved rounds')
    records = run_benchmark(cases, args.device, impls, repeats=repeats,
                            warmup=0 if args.dry_run else 1, dtypes=dtypes)
    print(format_table(records))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(records, f, indent=2)
    return records


def main(argv=None):
    return run_cli(run, parse_args(argv))


if __name__ == '__main__':
    main()
