"""Registers, spills and shared memory of every Triton kernel launch configuration, per GPU arch.

    python tools/analysis_tools/triton_resources.py [--arch 80 90] [--json out.json]

Needs no GPU: each configuration listed by the kernel modules' ``compile_specs()`` is compiled to
PTX by Triton and assembled by the ``ptxas -v`` bundled with it (``stm_mm.ops.triton.
compile_check``). ``--arch`` defaults to the GPU's own compute capability, else 80 and 90.
"""
import json

import torch

from stm_mm.engine.cli import run_cli
from stm_mm.tool_args import ToolArgumentParser, add_json


def parse_args(argv=None):
    parser = ToolArgumentParser(__doc__.split('\n')[0])
    parser.add_argument('--arch', type=int, nargs='+',
                        help='compute capabilities as 80, 90 (default: the GPU\'s, else 80 90)')
    add_json(parser, help='write the reports to this JSON file')
    return parser.parse_args(argv)


def run(args):
    from stm_mm.ops.triton.compile_check import resource_reports
    archs = args.arch
    if not archs:
        archs = ([int('%d%d' % torch.cuda.get_device_capability())]
                 if torch.cuda.is_available() else [80, 90])
    reports = resource_reports(archs)
    print(f'{"kernel":<36}{"arch":>8}{"warps":>6}{"regs":>6}{"spill st":>9}{"spill ld":>9}'
          f'{"smem KB":>9}')
    for r in reports:
        print(f'{r["name"]:<36}{r["arch"]:>8}{r["num_warps"]:>6}{r["registers"]:>6}'
              f'{r["spill_stores"]:>9}{r["spill_loads"]:>9}{r["shared_bytes"] / 1024:>9.1f}')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(reports, f, indent=2)
    return reports


def main(argv=None):
    return run_cli(run, parse_args(argv))


if __name__ == '__main__':
    main()
