"""Train a classifier (mmpretrain) or a detector (mmdet) from a config.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [--cfg-options k=v]
    tools/dist_train.sh CONFIG GPUS [...]        # torch.distributed; gloo on a CPU machine
"""
import argparse

from mmengine.config import Config, DictAction

import stm_mm  # noqa: F401  (registers the models; allow-lists MMEngine checkpoints)
from stm_mm.engine import apply_cli_options, build_runner, finish_distributed, init_distributed


def parse_args():
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from CKPT, or from the latest checkpoint in the work dir '
                        'when no path is given')
    parser.add_argument('--load-from', help='initialise the whole model from this checkpoint')
    parser.add_argument('--amp', action='store_true', help='mixed precision training (GPU)')
    parser.add_argument('--no-validate', action='store_true', help='skip validation')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the lr by the actual total batch size')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, e.g. train_cfg.max_epochs=2')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local-rank', '--local_rank', type=int, default=0)
    return parser.parse_args()


def main():
    args = parse_args()
    cfg = Config.fromfile(args.config)
    cfg = apply_cli_options(cfg, work_dir=args.work_dir, resume=args.resume,
                            load_from=args.load_from, amp=args.amp,
                            auto_scale_lr=args.auto_scale_lr, no_validate=args.no_validate,
                            launcher=args.launcher, cfg_options=args.cfg_options)
    init_distributed(cfg)
    try:
        build_runner(cfg).train()
    finally:
        finish_distributed()


if __name__ == '__main__':
    main()
