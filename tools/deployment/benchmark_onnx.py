"""onnxruntime vs PyTorch CPU inference of exported models, timed in interleaved rounds.

    python tools/deployment/benchmark_onnx.py [CONFIG ...] [--batch-size 1] [--input-size 224 [W]]
        [--threads 2] [--warmup 5] [--iters 20] [--spinning] [--json PATH]

Default configs: the five tiny classifiers. Each model is exported (fixed shape, as
tools/deployment/pytorch2onnx.py does) to a temporary file; every round then runs one PyTorch
forward (its fast paths, no_grad) and one onnxruntime run on the same input, so a machine that
speeds up or slows down affects both alike. Both use --threads intra-op threads.

Idle worker threads of both runtimes wait passively (OMP_WAIT_POLICY=PASSIVE for PyTorch's
OpenMP, no spinning in onnxruntime) unless --spinning: spin-waiting threads keep their cores
busy, and on a machine with more runnable threads than cores every OpenMP barrier then waits
for descheduled threads (PyTorch at 2 threads measured 100x slower on this project's shared
2-core machine; see docs/speed.md). glibc's malloc keeps freed memory, as in benchmark.py.
"""
import json
import os
import sys
import tempfile
import time
import warnings

# OpenMP reads its wait policy when it loads, i.e. on `import torch`: set it first
SPINNING = '--spinning' in sys.argv[1:]
os.environ.setdefault('OMP_WAIT_POLICY', 'ACTIVE' if SPINNING else 'PASSIVE')

import numpy as np  # noqa: E402
import torch  # noqa: E402

from stm_mm.analysis.benchmark import keep_freed_cpu_memory  # noqa: E402
from stm_mm.analysis.loaded_model import load_model  # noqa: E402
from stm_mm.deployment import example_input, export_onnx, exportable, onnx_session  # noqa: E402
from stm_mm.engine.cli import run_cli  # noqa: E402
from stm_mm.models import STM_NAMES  # noqa: E402
from stm_mm.tool_args import (ToolArgumentParser, add_batch_size, add_input_size,  # noqa: E402
                              add_json)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = [f'configs/cls/u_{stm}_tiny_in1k.py' for stm in STM_NAMES]


def parse_args(argv=None):
    parser = ToolArgumentParser(__doc__)
    parser.add_argument('configs', nargs='*', help='classification configs (default: the five '
                        'tiny models)')
    add_batch_size(parser, 1)
    add_input_size(parser)
    parser.add_argument('--threads', type=int, default=2, help='intra-op threads of both')
    parser.add_argument('--warmup', type=int, default=5, help='untimed rounds first')
    parser.add_argument('--iters', type=int, default=20, help='timed rounds')
    parser.add_argument('--spinning', action='store_true',
                        help='idle threads spin-wait (OMP_WAIT_POLICY=ACTIVE, onnxruntime\'s '
                        'default) instead of sleeping')
    add_json(parser)
    return parser.parse_args(argv)


def ort_session(path, threads, spinning):
    session = onnx_session(path, threads=threads, spinning=spinning)
    return lambda x: session.run(None, {'input': x})[0]


def time_pair(module, run_onnx, x, warmup, iters):
    """Milliseconds per round of PyTorch and onnxruntime on ``x``, interleaved; and their
    largest output difference."""
    times = {'pytorch': [], 'onnxruntime': []}
    x_np = x.numpy()
    with torch.no_grad():
        for round_index in range(warmup + iters):
            start = time.perf_counter()
            expected = module(x)
            middle = time.perf_counter()
            got = run_onnx(x_np)
            end = time.perf_counter()
            if round_index >= warmup:
                times['pytorch'].append((middle - start) * 1000)
                times['onnxruntime'].append((end - middle) * 1000)
    diff = float(np.abs(expected.numpy() - got).max())
    return {k: float(np.median(v)) for k, v in times.items()}, diff


def run(args):
    torch.set_num_threads(args.threads)
    keep_freed_cpu_memory()
    shape = (args.batch_size, 3, *args.input_size)
    records = []
    print(f'input {shape}, {args.threads} threads, OMP_WAIT_POLICY='
          f'{os.environ["OMP_WAIT_POLICY"]}, onnxruntime spinning '
          f'{"on" if args.spinning else "off"}, median of {args.iters} interleaved rounds')
    print(f'{"config":<34}{"pytorch ms":>12}{"ort ms":>10}{"pytorch/ort":>13}{"max|diff|":>11}')
    for config in args.configs or TINY:
        loaded = load_model(os.path.join(ROOT, config) if not os.path.exists(config) else config)
        module, names = exportable(loaded, 'model')
        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
            warnings.simplefilter('ignore')
            path = os.path.join(tmp, 'model.onnx')
            export_onnx(module, path, names, shape)
            run_onnx = ort_session(path, args.threads, args.spinning)
        ms, diff = time_pair(module, run_onnx, example_input(*shape), args.warmup, args.iters)
        ratio = ms['pytorch'] / ms['onnxruntime']
        print(f'{config:<34}{ms["pytorch"]:>12.1f}{ms["onnxruntime"]:>10.1f}{ratio:>12.2f}x'
              f'{diff:>11.1e}')
        records.append(dict(config=config, input_shape=list(shape), threads=args.threads,
                            omp_wait_policy=os.environ['OMP_WAIT_POLICY'], spinning=args.spinning,
                            pytorch_ms=ms['pytorch'],
                            onnxruntime_ms=ms['onnxruntime'], pytorch_over_ort=ratio,
                            max_abs_diff=diff))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(records, f, indent=1)


def main(argv=None):
    run_cli(run, parse_args(argv))


if __name__ == '__main__':
    main()
