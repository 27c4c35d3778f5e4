"""Convert the authors' classification checkpoints (STM-Evaluation) to stm_mm's layout and back.

    python tools/model_converters/official_to_stm_mm.py unified_halonet_tiny.pth \
        checkpoints/u_halo_tiny_in1k.pth [--config configs/_base_/models/u_halo_tiny.py] \
        [--ema] [--out-format safetensors]
    python tools/model_converters/official_to_stm_mm.py OURS.pth THEIRS.pth --reverse [--stm halo]

Forward: reads ``checkpoint['model']`` (the raw training weights; ``--ema``: ``model_ema``) and
writes an MMEngine-style ``{'state_dict': ..., 'meta': ...}`` (``meta['weights']`` = raw/ema) for
the mmpretrain ``ImageClassifier`` of configs/_base_/models/u_<stm>_<scale>.py. Reverse: writes
``{'model': ...}`` with the authors' keys (Swin's size-derived relative_position_index/attn_mask
buffers are not written; the authors' loader ignores them). Key maps: stm_mm/converters.py.
The input is read without running code from it (stm_mm/checkpoint_io.py; ``--unsafe-load`` for
files that need full unpickling). Errors are one line ``error: ...`` (``--debug``: traceback).
"""
import torch

from stm_mm.apis import init_model
from stm_mm.authors_checkpoints import official_checkpoint_to_stm_mm, stm_mm_checkpoint_to_official
from stm_mm.checkpoint_io import add_converter_options, load_checkpoint, save_checkpoint
from stm_mm.engine.cli import run_cli
from stm_mm.models.mixers import mixer_specs
from stm_mm.tool_args import ToolArgumentParser


def parse_args(argv=None):
    parser = ToolArgumentParser(__doc__.split('\n\n')[0])
    parser.add_argument('src', help='input checkpoint')
    parser.add_argument('dst', help='output checkpoint')
    parser.add_argument('--reverse', action='store_true',
                        help="stm_mm -> the authors' layout instead")
    parser.add_argument('--stm', choices=list(mixer_specs()),
                        help='mixer (reverse only; guessed from the keys when omitted)')
    parser.add_argument('--ema', action='store_true',
                        help="forward: convert the authors' `model_ema` instead of `model`")
    parser.add_argument('--config', help='forward: check that the result loads strictly into '
                        'the classifier of this config')
    add_converter_options(parser)
    args = parser.parse_args(argv)
    if args.reverse and args.out_format == 'safetensors':
        parser.error("--reverse writes the authors' {'model': ...} .pth layout; drop "
                     '--out-format safetensors')
    return args


def convert(args):
    checkpoint = load_checkpoint(args.src)
    if args.reverse:
        result, stm = stm_mm_checkpoint_to_official(checkpoint, args.stm)
        print(f'{args.src}: {len(result["model"])} tensors -> authors\' layout ({stm})')
        torch.save(result, args.dst)
    else:
        result = official_checkpoint_to_stm_mm(checkpoint, use_ema=args.ema, name=args.src)
        print(f'{args.src}: {len(result["state_dict"])} tensors '
              f'({result["meta"]["weights"]} weights) -> stm_mm layout')
        if args.config:
            from stm_mm.converters import check_state_dict_fits
            check_state_dict_fits(init_model(args.config, device='meta'), result['state_dict'])
            print(f'fits {args.config} exactly (strict)')
        save_checkpoint(result, args.dst, args.out_format)
    print(f'wrote {args.dst}')


def main(argv=None):
    args = parse_args(argv)
    run_cli(convert, args)


if __name__ == '__main__':
    main()
