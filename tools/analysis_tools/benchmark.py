"""Images/s, latency percentiles and peak memory of one or many models.

    python tools/analysis_tools/benchmark.py configs/_base_/models/u_swin_tiny.py \
        --batch-size 8 --input-size 224 224 --reference [--train] [--amp bf16] [--json out.json]
    python tools/analysis_tools/benchmark.py CONFIG --sizes 224 448      # scaling with pixels
    python tools/analysis_tools/benchmark.py CONFIG --train --amp bf16 --batch-size 128 \
        --utilisation --mlp                                # model FLOP utilisation on a GPU
    python tools/analysis_tools/benchmark.py CONFIG --train --profile  # where the time goes (CPU)

With ``--reference`` the same model and weights also run the unfused reference attention in
the same process; the table prints the speed ratio and the largest output difference.
"""
import json

import torch
from mmengine.config import Config, DictAction

from stm_mm.analysis.benchmark import (dense_half_peak_tflops, keep_freed_cpu_memory,
                                       max_output_difference, model_flops_per_image,
                                       time_stage_mlps, time_variants)
from stm_mm.analysis.profiling import format_summary, profile_step
from stm_mm.apis import init_model
from stm_mm.engine.cli import run_cli
from stm_mm.models import ImageToLogits
from stm_mm.models.utils import use_reference_attention
from stm_mm.tool_args import (ToolArgumentParser, add_batch_size, add_device, add_input_size,
                              add_json)


def build(config, cfg_options=None):
    """A classifier config gives ``image -> logits``; any other (detection) config its backbone."""
    cfg = Config.fromfile(config)
    if cfg.model.get('type', '').endswith('ImageClassifier'):
        return ImageToLogits(init_model(cfg, cfg_options=cfg_options))
    return init_model(cfg, part='backbone', cfg_options=cfg_options)


def backbone_of(model):
    return model.classifier.backbone if isinstance(model, ImageToLogits) else model


def print_utilisation(record, model, size, args, peak):
    """Achieved TFLOP/s of the whole model (and of every stage's MLP with --mlp) vs ``peak``."""
    flops = model_flops_per_image(model, size, args.train)
    tflops = record['images_per_s'] * flops / 1e12
    share = f', {100 * tflops / peak:.1f}% of the {peak:.0f} TFLOP/s peak' if peak else ''
    print(f'    model: {flops / 1e9:.2f} GFLOP per image{" (x3 for backward)" if args.train else ""}'
          f', {tflops:.3g} TFLOP/s achieved{share}')
    record.update(gflops_per_image=flops / 1e9, tflops=tflops,
                  utilisation=tflops / peak if peak else None)
    if args.mlp:
        record['mlp'] = time_stage_mlps(backbone_of(model), args.batch_size, size, args.device,
                                        args.amp, args.train, args.warmup, args.iters)
        for r in record['mlp']:
            share = f', {100 * r["tflops"] / peak:.1f}% of peak' if peak else ''
            print(f'    stage {r["stage"]} MLP ({r["tokens"]} tokens x {r["dim"]}): '
                  f'{r["ms"]:.2f} ms, {r["tflops"]:.3g} TFLOP/s{share}')


def print_profile(record, model, size, impl, args):
    """Profile one step of ``model`` (eager; the reference attention for ``impl='reference'``)
    and store the summary in ``record['profile']``."""
    if args.device != 'cpu':
        raise ValueError('--profile measures CPU self times; fix: add --device cpu')
    with use_reference_attention(impl == 'reference'):
        record['profile'] = profile_step(model, args.batch_size, size, args.train)
    print('\n'.join(format_summary(record['profile'])))


def parse_args(argv=None):
    parser = ToolArgumentParser(__doc__)
    parser.add_argument('configs', nargs='+')
    add_batch_size(parser, 8)
    add_input_size(parser)
    parser.add_argument('--sizes', type=int, nargs='+', help='square sizes to sweep instead')
    parser.add_argument('--train', action='store_true', help='time forward + backward')
    parser.add_argument('--amp', choices=['bf16', 'fp16'], help='autocast dtype')
    parser.add_argument('--compile', action='store_true',
                        help="also time the torch.compile'd model beside eager mode (ratio: "
                        'compiled over eager speed; it compiles in the warm-up rounds)')
    parser.add_argument('--reference', action='store_true', help='also time the reference')
    add_device(parser)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--iters', type=int, default=10)
    parser.add_argument('--utilisation', action='store_true',
                        help='also print achieved TFLOP/s and the share of the peak')
    parser.add_argument('--mlp', action='store_true',
                        help='with --utilisation: time every stage\'s MLP alone too')
    parser.add_argument('--peak-tflops', type=float,
                        help='dense half-precision peak of the device (default: known GPUs)')
    parser.add_argument('--system-malloc', action='store_true',
                        help='leave glibc malloc as configured (by default large CPU buffers '
                        'are kept instead of unmapped after every pass, see docs/speed.md)')
    parser.add_argument('--profile', action='store_true',
                        help='also profile one step per implementation (CPU, torch.profiler): '
                        'top ops by self time and time per category, forward and backward')
    add_json(parser)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='override config keys, e.g. model.backbone.with_cp=True')
    return parser.parse_args(argv)


def run(args):
    torch.manual_seed(0)
    if args.device == 'cpu' and not args.system_malloc and not keep_freed_cpu_memory():
        print('note: could not configure malloc (no glibc); large buffers are unmapped and '
              'page-faulted again on every pass')
    sizes = [(s, s) for s in args.sizes] if args.sizes else [tuple(args.input_size)]
    records = []
    peak = args.peak_tflops or dense_half_peak_tflops(args.device)
    if args.device.startswith('cuda'):
        print(f'device: {torch.cuda.get_device_name(args.device)}, torch {torch.__version__}')
    print(f'{"config":<40}{"impl":>10}{"size":>10}{"img/s":>10}{"p50 ms":>9}{"p90 ms":>9}'
          f'{"peak MB":>9}{"ratio":>7}  max |diff|')
    for config in args.configs:
        model = build(config, args.cfg_options)
        compiled = torch.compile(model) if args.compile else None
        base_time = None
        impls = ['fast', 'reference'] if args.reference else ['fast']
        if args.compile:  # eager mode timed beside the compiled model
            impls.insert(1, 'compiled')
        variants = [dict(input_size=size, reference=impl == 'reference',
                         model=compiled if impl == 'compiled' else model)
                    for size in sizes for impl in impls]
        # every (size, impl) pair is timed in the same interleaved rounds
        results = iter(time_variants(model, variants, args.batch_size, args.device, args.train,
                                     args.amp, args.warmup, args.iters))
        for size in sizes:
            fast_ips = None
            for impl in impls:
                r = next(results)
                extra = ''
                if impl == 'fast':
                    fast_ips = r['images_per_s']
                    if base_time is None:
                        base_time = 1 / fast_ips
                    ratio = (1 / fast_ips) / base_time
                    ratio_text = f'{ratio:>6.2f}x' if len(sizes) > 1 else ''
                elif impl == 'compiled':
                    ratio_text = f'{r["images_per_s"] / fast_ips:>6.2f}x'
                else:
                    ratio_text = f'{fast_ips / r["images_per_s"]:>6.2f}x'
                    diff, close = max_output_difference(model, min(args.batch_size, 2), size,
                                                        args.device)
                    extra = f'{diff:.2e} ({"equal" if close else "DIFFERENT"} at rtol 1e-4)'
                print(f'{config[-40:]:<40}{impl:>10}{f"{size[0]}x{size[1]}":>10}'
                      f'{r["images_per_s"]:>10.1f}{r["latency_ms"]["p50"]:>9.1f}'
                      f'{r["latency_ms"]["p90"]:>9.1f}{r["peak_mem_mb"]:>9.0f}{ratio_text:>7}  '
                      f'{extra}')
                records.append(dict(config=config, impl=impl, batch_size=args.batch_size,
                                    input_size=list(size), images_per_s=r['images_per_s'],
                                    peak_mem_mb=r['peak_mem_mb'], latency_ms=r['latency_ms'],
                                    train=args.train, mode='train' if args.train else
                                    'inference', compile=impl == 'compiled', amp=args.amp,
                                    device=args.device))
                if args.utilisation and impl == 'fast':
                    print_utilisation(records[-1], model, size, args, peak)
                if args.profile and impl != 'compiled':
                    print_profile(records[-1], model, size, impl, args)
    print('ratio: fast over reference speed (with --reference), compiled over eager (fast) speed '
          '(with --compile), or time relative to the first size (with --sizes)')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(records, f, indent=2)


def main(argv=None):
    run_cli(run, parse_args(argv))


if __name__ == '__main__':
    main()
