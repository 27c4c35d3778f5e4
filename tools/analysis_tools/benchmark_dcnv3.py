"""Time the compiled DCNv3 op against the PyTorch reference at U-InternImage-tiny's stage shapes.

    python tools/analysis_tools/benchmark_dcnv3.py [--quick] [--device cpu|cuda] [--threads N]
        [--repeats N] [--json out.json]

Both implementations run side by side in one process: forward (no grad) and forward+backward,
median milliseconds over the repeats. Cases: batch 16 at 224x224 (maps 56, 28, 14, 7) and, unless
--quick, batch 2 at 800x1216 (maps 200x304 ... 25x38). The table shows reference / compiled.
"""
import argparse
import json

import torch

from stm_mm.ops import dcnv3_available
from stm_mm.ops.benchmark import benchmark_cases, format_table, run_benchmark


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    parser.add_argument('--quick', action='store_true',
                        help='only the 224x224 cases, with fewer repeats')
    parser.add_argument('--repeats', type=int, help='timed runs per case (default 5, quick 2)')
    parser.add_argument('--threads', type=int, help='CPU threads (default: torch\'s default)')
    parser.add_argument('--json', metavar='PATH', help='write the records as a JSON list')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if not dcnv3_available(args.device):
        raise SystemExit(f'the compiled DCNv3 op is not available on {args.device}: build it with '
                         '`pip install -e .` (FORCE_CUDA=1 for CUDA)')
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats = args.repeats or (2 if args.quick else 5)
    threads = f', {torch.get_num_threads()} threads' if args.device == 'cpu' else ''
    print(f'DCNv3 on {args.device}{threads}, median of {repeats} runs')
    records = run_benchmark(benchmark_cases(args.quick), args.device, repeats=repeats)
    print(format_table(records))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(records, f, indent=2)
    return records


if __name__ == '__main__':
    main()
