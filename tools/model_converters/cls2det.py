"""Classification checkpoint -> detection-ready backbone checkpoint (and back with --reverse).

    python tools/model_converters/cls2det.py CLS.pth DET_BACKBONE.pth \
        [--config configs/det/u_halo_tiny_maskrcnn.py] [--ema] [--out-format safetensors]
    python tools/model_converters/cls2det.py DETECTOR.pth CLS.pth --reverse \
        [--norms output|stage] [--head-from CLS.pth]

Forward: accepts our checkpoints (MMEngine) and the authors' (``model``/``model_ema``, converted
on the fly); takes the raw training weights, as the authors' detector does (``--ema``: the EMA;
for MMEngine's EMAHook files these are `ema_state_dict` and `state_dict`, see stm_mm/transfer.py);
writes ``{'state_dict': {'backbone.*'}, 'meta'}`` (``meta['weights']`` = raw/ema) with classifier
neck/head and stage norms dropped. With ``--config`` (a detection config) the tensors are checked
against, and position tables resized to, that config's backbone. Load it with
``model.backbone.init_cfg=dict(type='PretrainedClassifier', checkpoint=DET_BACKBONE.pth)``.
Reverse: a detector's backbone as a classifier checkpoint for analysis (see stm_mm/transfer.py).
Inputs are read without running code from them (``--unsafe-load`` for files that need full
unpickling). Errors are one line ``error: ...`` (``--debug``: traceback).
"""
from stm_mm.checkpoint_io import add_converter_options
from stm_mm.engine.cli import run_cli
from stm_mm.tool_args import ToolArgumentParser
from stm_mm.transfer import transfer_cls_to_det, transfer_det_to_cls


def parse_args(argv=None):
    parser = ToolArgumentParser(__doc__.split('\n\n')[0])
    parser.add_argument('src', help='input checkpoint')
    parser.add_argument('dst', help='output checkpoint')
    parser.add_argument('--config', help='detection config whose backbone is the target')
    parser.add_argument('--ema', action='store_true',
                        help='use the EMA weights instead of the raw training weights')
    parser.add_argument('--reverse', action='store_true',
                        help='detector -> classifier backbone (for analysis)')
    parser.add_argument('--norms', choices=['output', 'stage'], default='output',
                        help="reverse: keep out_norms.3 (classifier built with "
                        "norm_placement='output') or rename out_norms to stage_norms")
    parser.add_argument('--head-from', help='reverse: copy neck/head from this classifier')
    add_converter_options(parser)
    return parser.parse_args(argv)


def convert(args):
    if args.reverse:
        transfer_det_to_cls(args.src, args.dst, norms=args.norms, head_from=args.head_from,
                            out_format=args.out_format)
    else:
        transfer_cls_to_det(args.src, args.dst, config=args.config, use_ema=args.ema,
                            out_format=args.out_format)


def main(argv=None):
    args = parse_args(argv)
    run_cli(convert, args)


if __name__ == '__main__':
    main()
