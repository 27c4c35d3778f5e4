"""Evaluate a checkpoint on the config's test set (classification or detection).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out results.pkl] [--cfg-options k=v]
    python tools/test.py DET_CONFIG CHECKPOINT --coco-json work_dirs/test-dev/results
        # detection: write COCO-format results (PREFIX.bbox.json, PREFIX.segm.json) for the
        # official evaluation server instead of computing metrics (see docs/detection.md)
    tools/dist_test.sh CONFIG CHECKPOINT GPUS [...]

The checkpoint argument is checked first. Errors are reported as one line `error: ...; fix: ...`
with exit code 2, as in tools/train.py; `--debug` shows the traceback. With `--skip-invalid`,
images that cannot be decoded are replaced and counted (`skipped_images` next to the metrics).
"""
from mmengine.config import Config, DictAction

import stm_mm  # noqa: F401
from stm_mm.checkpoint_io import add_unsafe_load_option
from stm_mm.engine import apply_cli_options, run_job
from stm_mm.engine.cli import run_cli
from stm_mm.engine.loading import check_checkpoint_file
from stm_mm.tool_args import ToolArgumentParser


def parse_args(argv=None):
    parser = ToolArgumentParser('Test (evaluate) a model')
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
    parser.add_argument('--skip-invalid', action='store_true',
                        help='replace test images that cannot be decoded by other samples '
                        '(counted next to the metrics, listed in work_dir/skipped_images.txt)')
    parser.add_argument('--skip-list', metavar='FILE',
                        help='with --skip-invalid: images to skip without reading them')
    add_unsafe_load_option(parser)  # full unpickling of trusted checkpoints only
    return parser.parse_args(argv)


def test(args):
    check_checkpoint_file(args.checkpoint)
    cfg = Config.fromfile(args.config)
    cfg = apply_cli_options(cfg, work_dir=args.work_dir, load_from=args.checkpoint,
                            launcher=args.launcher, cfg_options=args.cfg_options,
                            skip_invalid=args.skip_invalid, skip_list=args.skip_list)
    if args.coco_json:
        evaluators = cfg.test_evaluator
        evaluators = list(evaluators) if isinstance(evaluators, (list, tuple)) else [evaluators]
        coco = [e for e in evaluators if e.get('type') in ('CocoMetric', 'mmdet.CocoMetric')]
        if not coco:
            raise ValueError('--coco-json needs a CocoMetric in test_evaluator; fix: use a '
                             'detection config')
        for evaluator in coco:
            evaluator.update(format_only=True, outfile_prefix=args.coco_json)
        cfg.test_evaluator = evaluators if len(evaluators) > 1 else evaluators[0]
    if args.out:
        evaluators = cfg.test_evaluator
        evaluators = list(evaluators) if isinstance(evaluators, (list, tuple)) else [evaluators]
        evaluators.append(dict(type='DumpResults', out_file_path=args.out))
        cfg.test_evaluator = evaluators
    metrics = run_job(cfg, 'test')
    print(metrics)


def main(argv=None):
    """Errors: one line and exit code 2 (see stm_mm.engine.cli); --debug for the traceback."""
    run_cli(test, parse_args(argv))


if __name__ == '__main__':
    main()
