"""Convert the authors' classification checkpoints (STM-Evaluation) to stm_mm's layout and back.

    python tools/model_converters/official_to_stm_mm.py unified_halonet_tiny.pth \
        checkpoints/u_halo_tiny_in1k.pth [--config configs/_base_/models/u_halo_tiny.py]
    python tools/model_converters/official_to_stm_mm.py OURS.pth THEIRS.pth --reverse [--stm halo]

Forward: reads ``checkpoint['model']`` (``--ema``: ``model_ema``) and writes an MMEngine-style
``{'state_dict': ..., 'meta': ...}`` for the mmpretrain ``ImageClassifier`` of
configs/_base_/models/u_<stm>_<scale>.py. Reverse: writes ``{'model': ...}`` with the authors'
keys (Swin's size-derived relative_position_index/attn_mask buffers are not written; the authors'
loader ignores them). Key maps: stm_mm/converters.py.
"""
import argparse

import torch

from stm_mm.transfer import (load_checkpoint_file, official_checkpoint_to_stm_mm,
                             stm_mm_checkpoint_to_official)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='input checkpoint')
    parser.add_argument('dst', help='output checkpoint')
    parser.add_argument('--reverse', action='store_true',
                        help="stm_mm -> the authors' layout instead")
    parser.add_argument('--stm', choices=['halo', 'pvt', 'swin', 'dwconv', 'dcnv3'],
                        help='mixer (reverse only; guessed from the keys when omitted)')
    parser.add_argument('--ema', action='store_true',
                        help="forward: convert the authors' `model_ema` instead of `model`")
    parser.add_argument('--config', help='forward: check that the result loads strictly into '
                        'the classifier of this config')
    return parser.parse_args()


def main():
    args = parse_args()
    checkpoint = load_checkpoint_file(args.src)
    if args.reverse:
        result, stm = stm_mm_checkpoint_to_official(checkpoint, args.stm)
        print(f'{args.src}: {len(result["model"])} tensors -> authors\' layout ({stm})')
    else:
        result = official_checkpoint_to_stm_mm(checkpoint, use_ema=args.ema)
        print(f'{args.src}: {len(result["state_dict"])} tensors -> stm_mm layout')
        if args.config:
            from mmengine.config import Config
            from mmpretrain.registry import MODELS

            import stm_mm  # noqa: F401
            from stm_mm.converters import check_state_dict_fits
            cfg = Config.fromfile(args.config)
            with torch.device('meta'):
                model = MODELS.build(cfg.model)
            check_state_dict_fits(model, result['state_dict'])
            print(f'fits {args.config} exactly (strict)')
    torch.save(result, args.dst)
    print(f'wrote {args.dst}')


if __name__ == '__main__':
    main()
