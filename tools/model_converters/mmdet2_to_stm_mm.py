"""Convert the authors' mmdet 2.x Mask R-CNN checkpoints to stm_mm's mmdet 3.x detectors.

    python tools/model_converters/mmdet2_to_stm_mm.py \
        mask_rcnn_unified_halonet_tiny_1x.pth checkpoints/u_halo_tiny_maskrcnn_coco.pth \
        [--config configs/det/u_halo_tiny_maskrcnn.py] [--out-format safetensors]

Backbone keys (the authors' names incl. ``out_norm_i``) are mapped with stm_mm.converters;
FPN/RPN/RoI-head keys are the same in mmdet 2.x and 3.x and are copied. With ``--config`` the
result is checked to load strictly into that config's detector. Evaluate with
``tools/test.py CONFIG OUT.pth``. The input is read without running code from it
(``--unsafe-load`` for files that need full unpickling). Errors are one line ``error: ...``.
"""
from stm_mm.apis import init_model
from stm_mm.checkpoint_io import add_converter_options
from stm_mm.engine.cli import run_cli
from stm_mm.tool_args import ToolArgumentParser
from stm_mm.authors_checkpoints import convert_mmdet2_checkpoint


def parse_args(argv=None):
    parser = ToolArgumentParser(__doc__.split('\n\n')[0])
    parser.add_argument('src', help="the authors' mmdet 2.x checkpoint")
    parser.add_argument('dst', help='output checkpoint')
    parser.add_argument('--config', help='detection config to check a strict load against')
    add_converter_options(parser)
    return parser.parse_args(argv)


def convert(args):
    result, _ = convert_mmdet2_checkpoint(args.src, args.dst, out_format=args.out_format)
    if args.config:
        from stm_mm.converters import check_state_dict_fits
        check_state_dict_fits(init_model(args.config, device='meta'), result['state_dict'])
        print(f'fits {args.config} exactly (strict)')


def main(argv=None):
    args = parse_args(argv)
    run_cli(convert, args)


if __name__ == '__main__':
    main()
