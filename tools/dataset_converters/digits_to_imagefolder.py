"""Write scikit-learn's 1,797 handwritten digit scans as an image-folder dataset.

    python tools/dataset_converters/digits_to_imagefolder.py [OUT_DIR] [--size 32]
        [--val-fraction 0.2] [--seed 0] [--per-class-limit N] [--overwrite]

Layout (read by mmpretrain's CustomDataset through ``data_prefix='train'`` / ``'val'``):
OUT_DIR/{train,val}/<digit>/<index>.png, OUT_DIR/meta/{train,val}.txt, OUT_DIR/digits_info.json.
"""
import time

from stm_mm.datasets.digits import write_digits_imagefolder
from stm_mm.engine.cli import run_cli
from stm_mm.tool_args import ToolArgumentParser


def parse_args(argv=None):
    parser = ToolArgumentParser(__doc__.splitlines()[0])
    parser.add_argument('out_dir', nargs='?', default='data/digits',
                        help='output folder (default: data/digits)')
    parser.add_argument('--size', type=int, default=32, help='image side in pixels (default 32)')
    parser.add_argument('--val-fraction', type=float, default=0.2,
                        help='stratified validation share (default 0.2)')
    parser.add_argument('--seed', type=int, default=0, help='split seed (default 0)')
    parser.add_argument('--per-class-limit', type=int, default=None,
                        help='keep at most N images per class and split (tiny test sets)')
    parser.add_argument('--overwrite', action='store_true',
                        help='rewrite even when a matching conversion exists')
    return parser.parse_args(argv)


def run(args):
    start = time.time()
    info = write_digits_imagefolder(args.out_dir, size=args.size, val_fraction=args.val_fraction,
                                    seed=args.seed, per_class_limit=args.per_class_limit,
                                    overwrite=args.overwrite)
    print(f'digits -> {args.out_dir}: {info["counts"]["train"]} train / {info["counts"]["val"]} '
          f'val images, {info["size"]}x{info["size"]} RGB PNG, seed {info["seed"]} '
          f'({time.time() - start:.1f} s)')


def main(argv=None):
    run_cli(run, parse_args(argv))


if __name__ == '__main__':
    main()
