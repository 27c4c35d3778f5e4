"""Load time of a classifier's weights: ``.pth`` vs ``.safetensors`` (docs/reliability.md).

    python tools/analysis_tools/benchmark_checkpoint_load.py [--stm dwconv] \
        [--scales micro tiny] [--rounds 15]

For each scale: the classifier of configs/_base_/models/u_<stm>_<scale>.py is written once as
``{'state_dict', 'meta'}`` in both formats (stm_mm.checkpoint_io.save_checkpoint); then, in
interleaved rounds (pth, safetensors, pth, ... so that machine load hits both alike), each is
read with stm_mm.checkpoint_io.load_checkpoint and loaded into the model
(``load_state_dict(strict=True)``). Prints the median and min per format and the ratio, as a
markdown table.
"""
import os.path as osp
import statistics
import tempfile
import time

import torch

from stm_mm.apis import init_model
from stm_mm.checkpoint_io import load_checkpoint, save_checkpoint
from stm_mm.engine.cli import run_cli
from stm_mm.models import STM_NAMES
from stm_mm.tool_args import ToolArgumentParser

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args(argv=None):
    parser = ToolArgumentParser(__doc__.split('\n\n')[0])
    parser.add_argument('--stm', default='dwconv', choices=STM_NAMES)
    parser.add_argument('--scales', nargs='+', default=['micro', 'tiny'])
    parser.add_argument('--rounds', type=int, default=15)
    return parser.parse_args(argv)


def time_load(path, model):
    start = time.perf_counter()
    model.load_state_dict(load_checkpoint(path)['state_dict'], strict=True)
    return time.perf_counter() - start


def benchmark(stm, scale, rounds, folder):
    model = init_model(osp.join(ROOT, f'configs/_base_/models/u_{stm}_{scale}.py'))
    checkpoint = dict(state_dict=model.state_dict(), meta=dict(stm=stm, scale=scale))
    paths = {fmt: osp.join(folder, f'{stm}_{scale}.{fmt}') for fmt in ('pth', 'safetensors')}
    for fmt, path in paths.items():
        save_checkpoint(checkpoint, path, fmt)
    times = {fmt: [] for fmt in paths}
    for fmt, path in paths.items():  # warm-up: page cache, lazy imports
        time_load(path, model)
    for _ in range(rounds):
        for fmt, path in paths.items():
            times[fmt].append(time_load(path, model))
    size = sum(v.numel() for v in checkpoint['state_dict'].values())
    return size, {fmt: (statistics.median(t), min(t)) for fmt, t in times.items()}


def run(args):
    torch.set_num_threads(1)
    print('| model | tensors (M values) | .pth median / min (ms) | .safetensors median / min '
          '(ms) | pth / safetensors (median) |')
    print('|---|---|---|---|---|')
    with tempfile.TemporaryDirectory() as folder:
        for scale in args.scales:
            size, result = benchmark(args.stm, scale, args.rounds, folder)
            (pm, pn), (sm, sn) = result['pth'], result['safetensors']
            print(f'| u_{args.stm}_{scale} | {size / 1e6:.1f} | {pm * 1e3:.1f} / {pn * 1e3:.1f} '
                  f'| {sm * 1e3:.1f} / {sn * 1e3:.1f} | {pm / sm:.2f} |')



def main(argv=None):
    run_cli(run, parse_args(argv))


if __name__ == '__main__':
    main()
