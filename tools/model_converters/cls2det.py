"""Classification checkpoint -> detection-ready backbone checkpoint (and back with --reverse).

    python tools/model_converters/cls2det.py CLS.pth DET_BACKBONE.pth \
        [--config configs/det/u_halo_tiny_maskrcnn.py] [--no-ema]
    python tools/model_converters/cls2det.py DETECTOR.pth CLS.pth --reverse \
        [--norms output|stage] [--head-from CLS.pth]

Forward: accepts our checkpoints (MMEngine; EMA weights when the file has them) and the authors'
(``model``/``model_ema``, converted on the fly); writes ``{'state_dict': {'backbone.*'}, 'meta'}``
with classifier neck/head and stage norms dropped. With ``--config`` (a detection config) the
tensors are checked against, and position tables resized to, that config's backbone. Load it with
``model.backbone.init_cfg=dict(type='Pretrained', checkpoint=DET_BACKBONE.pth, prefix='backbone.')``.
Reverse: a detector's backbone as a classifier checkpoint for analysis (see stm_mm/transfer.py).
"""
import argparse

from stm_mm.transfer import transfer_cls_to_det, transfer_det_to_cls


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='input checkpoint')
    parser.add_argument('dst', help='output checkpoint')
    parser.add_argument('--config', help='detection config whose backbone is the target')
    parser.add_argument('--no-ema', action='store_true',
                        help='use the raw training weights even when the file has EMA weights')
    parser.add_argument('--reverse', action='store_true',
                        help='detector -> classifier backbone (for analysis)')
    parser.add_argument('--norms', choices=['output', 'stage'], default='output',
                        help="reverse: keep out_norms.3 (classifier built with "
                        "norm_placement='output') or rename out_norms to stage_norms")
    parser.add_argument('--head-from', help='reverse: copy neck/head from this classifier')
    return parser.parse_args()


def main():
    args = parse_args()
    if args.reverse:
        transfer_det_to_cls(args.src, args.dst, norms=args.norms, head_from=args.head_from)
    else:
        transfer_cls_to_det(args.src, args.dst, config=args.config, use_ema=not args.no_ema)


if __name__ == '__main__':
    main()
