"""Time two checkouts of stm_mm on the same configs, alternately, and print their speed ratio.

    git worktree add ../stm_mm-main main      # the baseline (copy its built stm_mm/_ext*.so)
    python tools/analysis_tools/compare_checkouts.py ../stm_mm-main . \
        configs/_base_/models/u_halo_tiny.py --rounds 3 -- --train --batch-size 8

Every round runs ``tools/analysis_tools/benchmark.py`` of each checkout (in its own process,
with the checkout first on ``PYTHONPATH``) once per config, alternating between them, so a
shared machine that speeds up or slows down affects both alike. Arguments after ``--`` go to
every benchmark run. Printed per config: the mean step time of each checkout per round and the
ratio base / new (above 1: the new checkout is faster), with its median and range over rounds.
"""
import json
import os
import os.path as osp
import subprocess
import sys
import tempfile

import numpy as np

from stm_mm.engine.cli import run_cli
from stm_mm.tool_args import ToolArgumentParser, add_json


def run_benchmark(checkout, config, extra, json_path):
    """Mean step time (ms) of ``config`` in ``checkout``'s benchmark tool."""
    checkout = osp.abspath(checkout)
    env = dict(os.environ, PYTHONPATH=checkout)
    cmd = [sys.executable, osp.join('tools', 'analysis_tools', 'benchmark.py'), config,
           '--json', json_path, *extra]
    result = subprocess.run(cmd, cwd=checkout, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f'benchmark failed in {checkout}: '
                           f'{result.stderr.strip().splitlines()[-1:]}; fix: run it there alone '
                           'to see the traceback')
    (record, ) = json.load(open(json_path))[:1]
    return 1000 * record['batch_size'] / record['images_per_s']


def parse_args(argv=None):
    """The arguments, and the unknown ones (passed on to benchmark.py)."""
    parser = ToolArgumentParser(__doc__)
    parser.add_argument('base', help='checkout to compare against (e.g. a worktree of main)')
    parser.add_argument('new', help='checkout under test')
    parser.add_argument('configs', nargs='+', help='config paths, relative to each checkout')
    parser.add_argument('--rounds', type=int, default=3)
    add_json(parser, help='write the per-round times and ratios to this JSON file')
    args, extra = parser.parse_known_args(argv)
    args.extra = [a for a in extra if a != '--']
    return args


def run(args):
    extra = args.extra
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        path = osp.join(tmp, 'record.json')
        for config in args.configs:
            times = {'base': [], 'new': []}
            for _ in range(args.rounds):
                for name in ('base', 'new'):
                    times[name].append(run_benchmark(getattr(args, name), config, extra, path))
            ratios = np.array(times['base']) / np.array(times['new'])
            print(f'{config}: base {", ".join(f"{t:.0f}" for t in times["base"])} ms, new '
                  f'{", ".join(f"{t:.0f}" for t in times["new"])} ms; base / new median '
                  f'{np.median(ratios):.2f}x (range {ratios.min():.2f}-{ratios.max():.2f}x)')
            records.append(dict(config=config, base_ms=times['base'], new_ms=times['new'],
                                ratio_median=float(np.median(ratios)), args=extra))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(records, f, indent=2)


def main(argv=None):
    run_cli(run, parse_args(argv))


if __name__ == '__main__':
    main()
