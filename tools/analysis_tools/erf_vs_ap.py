"""ERF@50 against detection AP of small, medium and large objects (paper section 6, Fig. 5).

    # from existing files: erf.json of tools/analysis_tools/erf.py + the metrics JSON of
    # tools/test.py (<work_dir>/<timestamp>/<timestamp>.json), one pair per model
    python tools/analysis_tools/erf_vs_ap.py --from-json ERF_JSON:METRICS_JSON[:LABEL] ... \
        [--stage 3] [--out-dir DIR]
    # from detection configs and checkpoints: ERF of the backbone and a test run each
    python tools/analysis_tools/erf_vs_ap.py --model CONFIG:CKPT[:LABEL] ... \
        [--erf-data DIR] [--input-size 1024] [--erf-images 50] [--cfg-options k=v ...]

Writes DIR/erf_vs_ap.{json,csv,png}: the joined table, Pearson and Spearman correlations per
object size (with the number of models) and one panel per size. See docs/analysis.md.
"""
import os.path as osp
import re

from stm_mm.engine.cli import run_cli
from stm_mm.tool_args import ToolArgumentParser, add_device, add_input_size


def parse_args(argv=None):
    from mmengine.config import DictAction

    from stm_mm.checkpoint_io import add_unsafe_load_option
    parser = ToolArgumentParser(__doc__)
    parser.add_argument('--from-json', nargs='+', default=[], metavar='ERF_JSON:METRICS_JSON[:LABEL]',
                        help='a model from its erf.json and COCO metrics JSON (label default: '
                        'the erf.json folder name)')
    parser.add_argument('--model', nargs='+', default=[], metavar='CONFIG:CKPT[:LABEL]',
                        help='a detection config and checkpoint: its ERF and test metrics are '
                        'computed')
    parser.add_argument('--stage', type=int, default=None,
                        help='stage index (0-3) of the ERF@50 on the x axis (default: the last)')
    parser.add_argument('--out-dir', default='work_dirs/erf_vs_ap')
    parser.add_argument('--title', default=None)
    erf = parser.add_argument_group('with --model: the ERF run (tools/analysis_tools/erf.py)')
    erf.add_argument('--erf-data', default='digits', help='image folder, "digits" or "noise"')
    add_input_size(erf, help='input side of the ERF run (square: one value)')
    erf.add_argument('--erf-images', type=int, default=8)
    add_device(erf)
    erf.add_argument('--threads', type=int, default=None, help='CPU threads of torch')
    erf.add_argument('--cfg-options', nargs='+', action=DictAction,
                     help='overrides of every --model config for its test run (data_root ...)')
    add_unsafe_load_option(parser)
    args = parser.parse_args(argv)
    if not args.from_json and not args.model:
        parser.error('no model; fix: pass --from-json ERF_JSON:METRICS_JSON ... or --model '
                     'CONFIG:CKPT ...')
    if args.input_size[0] != args.input_size[1]:
        parser.error(f'the ERF is measured on square inputs, got --input-size '
                     f'{args.input_size[0]} {args.input_size[1]}; fix: give one value')
    return args


def run(args):
    from stm_mm.analysis import erf_vs_ap
    from stm_mm.analysis.loaded_model import parse_model_spec
    entries = [erf_vs_ap.parse_json_spec(s) for s in args.from_json]
    models = [parse_model_spec(s) for s in args.model]
    entries = [(label, e, m) for e, m, label in entries]
    if models:
        import torch
        if args.threads:
            torch.set_num_threads(args.threads)
        erf_kwargs = dict(data=args.erf_data, num_images=args.erf_images,
                          input_size=args.input_size[0], device=args.device)
        for k, (config, checkpoint, label) in enumerate(models):
            name = re.sub(r'[^\w.-]+', '_', label or osp.splitext(osp.basename(config))[0])
            entries.append(erf_vs_ap.model_inputs(
                config, checkpoint, label, osp.join(args.out_dir, 'models', f'{k}_{name}'),
                erf_kwargs, args.cfg_options))
    erf_vs_ap.run_erf_vs_ap(entries, args.out_dir,
                            None if args.stage is None else str(args.stage), args.title)
    print(f'[erf_vs_ap] wrote {args.out_dir}/erf_vs_ap.{{json,csv,png}}')


def main(argv=None):
    run_cli(run, parse_args(argv))


if __name__ == '__main__':
    main()
