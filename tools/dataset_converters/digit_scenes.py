"""Write the digit-scenes instance-segmentation set (COCO json + PNGs) from scikit-learn's digits.

    python tools/dataset_converters/digit_scenes.py [OUT_DIR] [--num-train 600] [--num-val 150]
        [--size 128] [--max-digits 4] [--digit-size 20 52] [--close-ups 0.3] [--seed 0]
        [--force]

OUT_DIR (default data/digit_scenes): annotations/instances_{train,val}.json, {train,val}/*.png.
Nothing is downloaded; the same settings always give the same files. See
stm_mm/datasets/digit_scenes.py.
"""
import time

from stm_mm.datasets.digit_scenes import DEFAULTS, generate_digit_scenes
from stm_mm.engine.cli import run_cli
from stm_mm.tool_args import ToolArgumentParser


def parse_args(argv=None):
    parser = ToolArgumentParser(__doc__.splitlines()[0])
    parser.add_argument('out_dir', nargs='?', default='data/digit_scenes',
                        help='output folder (default: data/digit_scenes)')
    parser.add_argument('--num-train', type=int, default=DEFAULTS['num_train'])
    parser.add_argument('--num-val', type=int, default=DEFAULTS['num_val'])
    parser.add_argument('--size', type=int, default=DEFAULTS['image_size'],
                        help='image side in pixels')
    parser.add_argument('--max-digits', type=int, default=DEFAULTS['max_digits'],
                        help='digits per image: 1 .. this')
    parser.add_argument('--digit-size', type=int, nargs=2, default=DEFAULTS['digit_size'],
                        metavar=('MIN', 'MAX'), help='digit height range in pixels')
    parser.add_argument('--close-ups', type=float, default=DEFAULTS['close_up_fraction'],
                        help='close-up scenes (one big digit, 2x the side) per regular scene '
                        '(default 0.3; 0: none, no COCO "large" objects)')
    parser.add_argument('--seed', type=int, default=DEFAULTS['seed'])
    parser.add_argument('--force', action='store_true',
                        help='regenerate even when OUT_DIR holds the same settings')
    return parser.parse_args(argv)


def run(args):
    start = time.time()
    info = generate_digit_scenes(args.out_dir, num_train=args.num_train, num_val=args.num_val,
                                 image_size=args.size, max_digits=args.max_digits,
                                 digit_size=args.digit_size, seed=args.seed,
                                 close_up_fraction=args.close_ups, force=args.force)
    counts = info['counts']
    print(f'digit scenes -> {args.out_dir}: train {counts["train"]["images"]} images / '
          f'{counts["train"]["instances"]} digits, val {counts["val"]["images"]} / '
          f'{counts["val"]["instances"]}, {info["settings"]["image_size"]}px '
          f'({time.time() - start:.1f} s)')


def main(argv=None):
    run_cli(run, parse_args(argv))


if __name__ == '__main__':
    main()
