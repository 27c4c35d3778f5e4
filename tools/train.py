"""Train a classifier (mmpretrain) or a detector (mmdet) from a config.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [--compile]
        [--cfg-options k=v]
    tools/dist_train.sh CONFIG GPUS [...]        # torch.distributed; gloo on a CPU machine

Errors (bad config, data, checkpoint, launch environment; NaN loss) are reported as one line
`error: ...` with the fix, exit code 2 (3: training stopped); `--debug` shows the traceback.
`--skip-invalid` skips bad annotations and undecodable images instead (logged, counted).
See docs/reliability.md.
"""
from mmengine.config import Config, DictAction

import stm_mm  # noqa: F401  (registers the models; allow-lists MMEngine checkpoints)
from stm_mm.checkpoint_io import add_unsafe_load_option
from stm_mm.engine import apply_cli_options, run_job
from stm_mm.engine.cli import run_cli
from stm_mm.tool_args import ToolArgumentParser


def parse_args(argv=None):
    parser = ToolArgumentParser('Train a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from CKPT, or from the latest checkpoint in the work dir '
                        'when no path is given')
    parser.add_argument('--load-from', help='initialise the whole model from this checkpoint')
    parser.add_argument('--amp', action='store_true', help='mixed precision training (GPU)')
    parser.add_argument('--compile', action='store_true',
                        help='torch.compile the backbone (compile=True in the config)')
    parser.add_argument('--no-validate', action='store_true', help='skip validation')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the lr by the actual total batch size')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, e.g. train_cfg.max_epochs=2')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--skip-invalid', action='store_true',
                        help='drop invalid annotations (a cleaned json is written to the work '
                        'dir) and replace images that cannot be decoded by other samples '
                        '(listed in work_dir/skipped_images.txt) instead of stopping')
    parser.add_argument('--skip-list', metavar='FILE',
                        help='with --skip-invalid: images to skip without reading them (the '
                        'list written by tools/analysis_tools/check_images.py)')
    parser.add_argument('--non-strict-load', action='store_true',
                        help='allow --load-from / load_from checkpoints that do not fit the '
                        'model exactly (missing/unexpected keys are then only logged)')
    add_unsafe_load_option(parser)  # full unpickling of trusted checkpoints only
    return parser.parse_args(argv)


def train(args):
    cfg = Config.fromfile(args.config)
    cfg = apply_cli_options(cfg, work_dir=args.work_dir, resume=args.resume,
                            load_from=args.load_from, amp=args.amp, compile=args.compile,
                            auto_scale_lr=args.auto_scale_lr, no_validate=args.no_validate,
                            launcher=args.launcher, cfg_options=args.cfg_options,
                            skip_invalid=args.skip_invalid, skip_list=args.skip_list,
                            non_strict_load=args.non_strict_load)
    run_job(cfg, 'train')


def main(argv=None):
    """Errors end the process with one line `error: <reason>; fix: ...` on stderr and exit code
    2 (bad config, data, checkpoint or launch) or 3 (training stopped, e.g. a NaN loss);
    --debug shows the traceback instead (stm_mm.engine.cli)."""
    run_cli(train, parse_args(argv))


if __name__ == '__main__':
    main()
