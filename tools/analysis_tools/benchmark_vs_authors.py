"""Our models timed beside the authors' released classification code, in one process.

    python tools/analysis_tools/benchmark_vs_authors.py \
        --authors-root PATH/STM-Evaluation/classification --authors-site PATH/timm067 \
        [--stm halo pvt swin dwconv dcnv3] [--scale tiny] [--rounds 10] [--warmup 2] \
        [--batch-size 8] [--input-size 224] [--threads 2] [--system-malloc] [--gemm-floor] \
        [--json out.json]

For every mixer: the authors' ``unified_<name>_<scale>`` (their ``models`` package imported
from ``--authors-root`` with timm 0.6.7 from ``--authors-site``, which is put at the front of
``sys.path`` only while their modules are imported) and ours from
configs/_base_/models/u_<stm>_<scale>.py get the same weights: theirs random-initialised (fixed
seed; layer scales and DCNv3's zero-initialised offset/weight projections drawn at random so
every mixer matters), converted with ``stm_mm.converters.official_to_stm_mm`` and loaded
strictly into ours. Their logits and ours on one batch must agree (max |diff| <= --tolerance,
unless --no-check). Then, in interleaved rounds (order alternating every round), each model runs
an inference step (eval, no_grad) and a training step (train mode, drop path at the config's
rate in both, cross-entropy on fixed labels, backward, grads set to None). Prints per mixer and
mode the median ms per step of each and authors/ours (our speed-up), with min/max over rounds.
One mixer pair at a time is built, timed and freed.

Their DCNv3 block calls the compiled ``MultiScaleDeformableAttention`` extension; a module of
that name must be importable (their built ops, or a CPU stand-in put on ``--authors-site``).
"""
import gc
import json
import os
import os.path as osp
import statistics
import sys
import time

import torch
import torch.nn.functional as F

from stm_mm.apis import init_model
from stm_mm.engine.cli import run_cli
from stm_mm.models import ImageToLogits
from stm_mm.tool_args import ToolArgumentParser, add_batch_size, add_input_size, add_json

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# our mixer name -> the authors' model-name prefix (timm registry of their model_factory)
AUTHORS_NAMES = dict(halo='unified_halo', pvt='unified_pvt', swin='unified_swin',
                     dwconv='unified_convnext', dcnv3='unified_dcn_v3')
AUTHORS_TIMM = '0.6.7'
_GAMMA_NAMES = ('gamma', 'gamma_1', 'gamma_2', 'gamma1', 'gamma2')


def parse_args(argv=None):
    parser = ToolArgumentParser(__doc__.split('\n\n')[0])
    parser.add_argument('--authors-root', help="the authors' classification/ folder "
                        '(holds their models/ package)')
    parser.add_argument('--authors-site', help='a folder with timm 0.6.7 installed in it '
                        '(pip install --no-deps --target DIR timm==0.6.7)')
    parser.add_argument('--stm', nargs='+', default=list(AUTHORS_NAMES),
                        choices=list(AUTHORS_NAMES))
    parser.add_argument('--scale', default='tiny', choices=['micro', 'tiny', 'small', 'base'])
    add_batch_size(parser, 8)
    add_input_size(parser)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--rounds', type=int, default=10)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--tolerance', type=float, default=1e-4,
                        help='largest allowed max |logit difference|')
    parser.add_argument('--no-check', action='store_true',
                        help='print the logit difference but time even when it is too large')
    parser.add_argument('--system-malloc', action='store_true',
                        help='leave glibc malloc as configured (default: keep freed CPU memory, '
                        'as tools/analysis_tools/benchmark.py does)')
    parser.add_argument('--gemm-floor', action='store_true',
                        help='also time the linear layers\' GEMMs of a training step alone '
                        '(stm_mm/analysis/gemm_floor.py): the floor under both implementations')
    add_json(parser)
    return parser.parse_args(argv)


def import_authors(root, site):
    """Import the authors' ``models`` package (registers their models in timm 0.6.7) and
    return timm's ``create_model``."""
    fix_site = ('fix: pass --authors-site DIR after `python -m pip install --no-deps --target '
                f'DIR timm=={AUTHORS_TIMM}`')
    if not root:
        raise FileNotFoundError("--authors-root is missing; fix: pass the authors' "
                                'STM-Evaluation classification/ folder (it holds models/)')
    if not osp.isfile(osp.join(root, 'models', 'model_factory', '__init__.py')):
        raise FileNotFoundError(f"--authors-root {root} has no models/model_factory/; fix: "
                                "point it at the authors' STM-Evaluation classification/ folder")
    if not site or not osp.isfile(osp.join(site, 'timm', '__init__.py')):
        raise FileNotFoundError(f'--authors-site {site} holds no timm; {fix_site}')
    saved = list(sys.path)
    sys.path[:0] = [osp.abspath(site), osp.abspath(root)]
    try:
        import timm
        if timm.__version__ != AUTHORS_TIMM or not timm.__file__.startswith(osp.abspath(site)):
            raise ValueError(f'--authors-site gives timm {timm.__version__} from '
                             f'{timm.__file__}, not {AUTHORS_TIMM}; {fix_site}')
        try:
            import models  # noqa: F401  the authors' package: registers unified_* in timm
        except ModuleNotFoundError as e:
            raise ValueError(f"the authors' code needs the module {e.name!r}; fix: install it "
                             '(MultiScaleDeformableAttention: build their ops, or put a CPU '
                             'stand-in of that name on --authors-site)') from e
        from timm.models import create_model
    finally:
        sys.path[:] = saved
    return create_model


def build_ours(stm, scale, checkpoint):
    """Our classifier of configs/_base_/models/u_<stm>_<scale>.py with the weights of
    ``checkpoint`` as image -> logits, and its drop-path rate."""
    model = init_model(osp.join(ROOT, f'configs/_base_/models/u_{stm}_{scale}.py'), checkpoint)
    return ImageToLogits(model), model.cfg.model.backbone.drop_path_rate


def randomise_authors(model, seed):
    """Layer scales to U(0.5, 1.5), DCNv3's zero-initialised offset / attention-weight
    projections to N(0, 0.05) (so that every mixer shapes the logits), and the weights of the
    extra-transform conv and the classifier to N(0, 1 / fan_in) instead of N(0, 0.02^2)
    (logits of order 1, not 0.1, so that an absolute tolerance means something)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            last = name.rsplit('.', 2)
            if last[-1] in _GAMMA_NAMES:
                param.copy_(torch.rand(param.shape, generator=generator) + 0.5)
            elif len(last) == 3 and last[-2] in ('sampling_offsets', 'attention_weights'):
                param.copy_(torch.randn(param.shape, generator=generator) * 0.05)
            elif name in ('conv_head.0.weight', 'head.weight'):
                param.copy_(torch.randn(param.shape, generator=generator) / param[0].numel()**0.5)


def max_drop_path(model):
    return max((m.drop_prob for m in model.modules() if hasattr(m, 'drop_prob')), default=0.0)


def build_pair(stm, scale, create_model, seed):
    """(authors' model, ours with the same weights, our config's drop-path rate)."""
    torch.manual_seed(seed)
    authors = create_model(f'{AUTHORS_NAMES[stm]}_{scale}')
    randomise_authors(authors, seed)
    ours, drop_path_rate = build_ours(stm, scale, dict(model=authors.state_dict()))
    return authors, ours, drop_path_rate


def logit_difference(authors, ours, x):
    """(max |authors - ours|, max |authors|) of the logits of ``x`` in eval mode."""
    with torch.no_grad():
        theirs = authors.eval()(x)
        return float((theirs - ours.eval()(x)).abs().max()), float(theirs.abs().max())


def make_steps(model, x, labels):
    def infer():
        model.eval()
        with torch.no_grad():
            model(x)

    def train():
        model.train()
        F.cross_entropy(model(x), labels).backward()
        model.zero_grad(set_to_none=True)

    return dict(infer=infer, train=train)


def time_pair(authors, ours, x, labels, rounds, warmup, gemm_step=None):
    """Seconds per step, ``{mode: {side: [round times]}}``, in interleaved rounds whose order
    alternates (authors first in even rounds, ours first in odd ones). ``gemm_step`` (see
    :mod:`stm_mm.analysis.gemm_floor`) is timed in the same rounds as side ``gemm`` of ``train``."""
    steps = dict(authors=make_steps(authors, x, labels), ours=make_steps(ours, x, labels))
    times = {mode: dict(authors=[], ours=[]) for mode in ('train', 'infer')}
    if gemm_step is not None:
        steps['gemm'] = dict(train=gemm_step)
        times['train']['gemm'] = []
    for index in range(warmup + rounds):
        sides = ['authors', 'ours'] if index % 2 == 0 else ['ours', 'authors']
        for mode in times:
            for side in sides + (['gemm'] if 'gemm' in times[mode] else []):
                start = time.perf_counter()
                steps[side][mode]()
                if index >= warmup:
                    times[mode][side].append(time.perf_counter() - start)
    return times


def run(args):
    create_model = import_authors(args.authors_root, args.authors_site)
    from stm_mm.analysis.benchmark import keep_freed_cpu_memory
    torch.set_num_threads(args.threads)
    if args.system_malloc:
        malloc = 'glibc default (--system-malloc)'
    elif keep_freed_cpu_memory():
        malloc = 'keep freed CPU memory (keep_freed_cpu_memory)'
    else:
        malloc = 'glibc default (could not configure malloc: no glibc)'
    print(f'torch {torch.__version__}, {args.threads} threads, float32, batch '
          f'{args.batch_size} at {args.input_size[0]}x{args.input_size[1]}, {args.rounds} rounds '
          f'after {args.warmup} warm-up, malloc: {malloc}')
    print(f'{"stm":<8}{"mode":<7}{"authors ms":>12}{"ours ms":>10}{"authors/ours":>14}'
          f'{"authors min-max":>18}{"ours min-max":>16}')
    records = []
    for stm in args.stm:
        load_start = os.getloadavg()
        authors, ours, rate = build_pair(stm, args.scale, create_model, args.seed)
        if abs(max_drop_path(authors) - rate) > 1e-6:  # theirs is a float32 tensor value
            raise ValueError(f'{stm}: drop path {max_drop_path(authors)} (authors) vs {rate} '
                             f'(ours); fix: use configs that match the authors\' factory')
        generator = torch.Generator().manual_seed(args.seed)
        x = torch.randn(args.batch_size, 3, *args.input_size,
                        generator=generator)
        labels = torch.randint(0, 1000, (args.batch_size, ), generator=generator)
        diff, scale = logit_difference(authors, ours, x)
        verdict = 'ok' if diff <= args.tolerance else 'TOO LARGE'
        print(f'{stm}: logits max |authors - ours| = {diff:.2e} ({verdict} at {args.tolerance:g};'
              f' max |logit| {scale:.2f}), drop path {rate}')
        if diff > args.tolerance and not args.no_check:
            raise ValueError(f'{stm}: logits differ by {diff:.2e} > {args.tolerance:g}; fix: '
                             'find the mismatch, or time anyway with --no-check')
        gemm_step = None
        if args.gemm_floor:
            from stm_mm.analysis.gemm_floor import make_gemm_step, record_linear_calls
            gemm_step = make_gemm_step(record_linear_calls(ours.train(), x))
        times = time_pair(authors, ours, x, labels, args.rounds, args.warmup, gemm_step)
        load_end = os.getloadavg()
        for mode, sides in times.items():
            a_ms, o_ms = ([t * 1000 for t in sides[s]] for s in ('authors', 'ours'))
            a_med, o_med = statistics.median(a_ms), statistics.median(o_ms)
            print(f'{stm:<8}{mode:<7}{a_med:>12.1f}{o_med:>10.1f}{a_med / o_med:>13.2f}x'
                  f'{f"{min(a_ms):.1f}-{max(a_ms):.1f}":>18}{f"{min(o_ms):.1f}-{max(o_ms):.1f}":>16}')
            floor = {}
            if 'gemm' in sides:
                g_med = statistics.median(t * 1000 for t in sides['gemm'])
                floor = dict(gemm_floor_ms=g_med, best_possible_ratio=a_med / g_med)
                print(f'{"":<8}{"":<7}linear-layer GEMMs alone {g_med:.1f} ms ({100 * g_med / o_med:.0f}% '
                      f'of ours): no implementation can beat the authors by more than '
                      f'{a_med / g_med:.2f}x')
            records.append(dict(
                stm=stm, scale=args.scale, mode=mode, authors_ms=a_med, ours_ms=o_med,
                ratio=a_med / o_med, authors_min_ms=min(a_ms), authors_max_ms=max(a_ms),
                ours_min_ms=min(o_ms), ours_max_ms=max(o_ms), rounds=args.rounds,
                warmup=args.warmup, threads=args.threads, batch_size=args.batch_size,
                input_size=list(args.input_size), malloc=malloc, torch=torch.__version__,
                drop_path_rate=rate, logits_max_diff=diff, logits_max_abs=scale,
                loadavg_start=list(load_start),
                loadavg_end=list(load_end), **floor))
        del authors, ours, times
        gc.collect()
    print('authors/ours: median ms of the authors\' step over ours (our speed-up); train = '
          'forward + cross-entropy + backward at the config\'s drop-path rate')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(records, f, indent=2)
    return records


def main(argv=None):
    args = parse_args(argv)
    run_cli(run, args)


if __name__ == '__main__':
    main()
