"""Evaluate a checkpoint on the config's test set (classification or detection).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out results.pkl] [--cfg-options k=v]
    python tools/test.py DET_CONFIG CHECKPOINT --coco-json work_dirs/test-dev/results
        # detection: write COCO-format results (PREFIX.bbox.json, PREFIX.segm.json) for the
        # official evaluation server instead of computing metrics (see docs/detection.md)
"""
import argparse

from mmengine.config import Config, DictAction

import stm_mm  # noqa: F401
from stm_mm.checkpoint_io import add_unsafe_load_option
from stm_mm.engine import apply_cli_options, build_runner, finish_distributed, init_distributed


def parse_args():
    parser = argparse.ArgumentParser(description='Test (evaluate) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save logs and metrics')
    parser.add_argument('--out', help='dump the raw predictions to this pickle file')
    parser.add_argument('--coco-json', metavar='PREFIX',
                        help='detection: only dump results in COCO json format to '
                        'PREFIX.bbox.json / PREFIX.segm.json (CocoMetric format_only) for the '
                        'evaluation server; no metrics are computed')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    add_unsafe_load_option(parser)  # full unpickling of trusted checkpoints only
    parser.add_argument('--local-rank', '--local_rank', type=int, default=0)
    return parser.parse_args()


def main():
    args = parse_args()
    cfg = Config.fromfile(args.config)
    cfg = apply_cli_options(cfg, work_dir=args.work_dir, load_from=args.checkpoint,
                            launcher=args.launcher, cfg_options=args.cfg_options)
    if args.coco_json:
        evaluators = cfg.test_evaluator
        evaluators = list(evaluators) if isinstance(evaluators, (list, tuple)) else [evaluators]
        coco = [e for e in evaluators if e.get('type') in ('CocoMetric', 'mmdet.CocoMetric')]
        if not coco:
            raise ValueError('--coco-json needs a CocoMetric in test_evaluator')
        for evaluator in coco:
            evaluator.update(format_only=True, outfile_prefix=args.coco_json)
        cfg.test_evaluator = evaluators if len(evaluators) > 1 else evaluators[0]
    if args.out:
        evaluators = cfg.test_evaluator
        evaluators = list(evaluators) if isinstance(evaluators, (list, tuple)) else [evaluators]
        evaluators.append(dict(type='DumpResults', out_file_path=args.out))
        cfg.test_evaluator = evaluators
    init_distributed(cfg)
    try:
        metrics = build_runner(cfg).test()
        print(metrics)
    finally:
        finish_distributed()


if __name__ == '__main__':
    main()
