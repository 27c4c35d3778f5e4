"""Kill a training run at random iterations, resume it, compare with the uninterrupted run.

    python tools/analysis_tools/resume_sweep.py [--kills 10] [--seed 0] [--workers 2]
        [--loops iter epoch] [--persistent on off] [--out FILE.json]

For each loop kind (iteration- or epoch-based) and ``persistent_workers`` setting, a tiny
classifier (tests/helpers/tiny_training.py: ``workers_cfg``; random crops and flips in the
data-loader workers, drop-path in the main process, 12 iterations, a checkpoint every 2
iterations or every epoch of 4) runs once uninterrupted. Then, ``--kills`` times, a run is
SIGKILLed before a random iteration (2..12), resumed with ``--resume`` and its final weights
are compared with ``torch.equal``. Prints one line per kill; exits 1 if any run differs.
See docs/reliability.md.
"""
import json
import os
import os.path as osp
import random
import shutil
import signal
import sys
import tempfile
import time

from stm_mm.engine.cli import run_cli
from stm_mm.tool_args import ToolArgumentParser

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args(argv=None):
    parser = ToolArgumentParser(__doc__)
    parser.add_argument('--kills', type=int, default=10, help='kill points per configuration')
    parser.add_argument('--seed', type=int, default=0, help='seed of the kill points')
    parser.add_argument('--workers', type=int, default=2, help='data-loader workers')
    parser.add_argument('--loops', nargs='+', choices=['iter', 'epoch'],
                        default=['iter', 'epoch'])
    parser.add_argument('--persistent', nargs='+', choices=['on', 'off'], default=['on', 'off'])
    parser.add_argument('--out', help='write the results as JSON here')
    return parser.parse_args(argv)


def run(args):
    sys.path.insert(0, ROOT)
    import torch

    from stm_mm.engine import apply_cli_options, build_runner
    from tests.helpers import faults  # noqa: F401  (registers FaultHook)
    from tests.helpers.tiny_training import forked, weights, workers_cfg, write_image_folder

    torch.set_num_threads(1)  # float sums depend on the thread count
    rng = random.Random(args.seed)
    tmp = tempfile.mkdtemp(prefix='resume_sweep_')
    data = write_image_folder(osp.join(tmp, 'data'))
    results, failures = [], 0
    try:
        for loop in args.loops:
            for persistent in args.persistent:
                kw = dict(loop=loop, persistent=persistent == 'on',
                          num_workers=args.workers, log_level='WARNING')
                reference = osp.join(tmp, f'ref_{loop}_{persistent}')
                how = forked(lambda: build_runner(workers_cfg(data, reference, **kw)).train())
                assert how == ('exit', 0), how
                final = 'iter_12.pth' if loop == 'iter' else 'epoch_3.pth'
                expected = weights(osp.join(reference, final))
                for _ in range(args.kills):
                    at = rng.randint(2, 12)
                    work_dir = osp.join(tmp, f'w_{loop}_{persistent}_{at}')
                    shutil.rmtree(work_dir, ignore_errors=True)
                    hook = dict(type='FaultHook', point='train_iter', iter=at)
                    start = time.time()
                    killed = forked(lambda: build_runner(workers_cfg(
                        data, work_dir, custom_hooks=[hook], **kw)).train())
                    resumed = forked(lambda: build_runner(apply_cli_options(
                        workers_cfg(data, work_dir, **kw), resume='auto')).train())
                    got = weights(osp.join(work_dir, final)) \
                        if resumed == ('exit', 0) else {}
                    differ = sum(1 for k, v in expected.items()
                                 if k not in got or not torch.equal(v, got[k]))
                    failures += bool(differ) or killed != ('signal', signal.SIGKILL)
                    results.append(dict(loop=loop, persistent=persistent, kill_before=at,
                                        killed=list(killed), resumed=list(resumed),
                                        tensors=len(expected), differ=differ,
                                        seconds=round(time.time() - start, 1)))
                    print(f'{loop:5s} persistent={persistent:3s} kill before iteration '
                          f'{at:2d}: {"EQUAL" if not differ else f"{differ} tensors differ"}'
                          f' ({results[-1]["seconds"]} s)', flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f'{len(results) - failures} of {len(results)} resumed runs equal the uninterrupted '
          'run (torch.equal, every tensor)')
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(results, f, indent=1)
    return 1 if failures else 0


def main(argv=None):
    return run_cli(run, parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())
