"""Translation / rotation invariance of classifiers and scale invariance of detectors (paper
section 6, Fig. 7).

    # classification: consistency and accuracy under translation (0..64 px at 224, scaled to the
    # image) and rotation (0..45 degrees); embedded digits by default
    python tools/analysis_tools/invariance.py cls CONFIG CHECKPOINT [--compare CONFIG:CKPT ...]
        [--data IMAGENET_VAL_DIR] [--num-images N] [--out-dir DIR]
    # detection: box mAP of predictions at scales 0.25..3.0 against those at scale 1
    python tools/analysis_tools/invariance.py det CONFIG CHECKPOINT [--compare ...] [--data ...]
    # one figure from several result files (e.g. cls + det: translation, rotation, scale)
    python tools/analysis_tools/invariance.py plot A.json B.json --out FIG.png

CHECKPOINT may be `none`, a work dir or a quoted glob ("work_dirs/run/epoch_*.pth"): several
checkpoints of one run are each evaluated and DIR/invariance_{cls,det}_training.{json,csv,png}
holds the mean consistency per checkpoint (Fig. 7c). Writes DIR/invariance_{cls,det}.{json,csv,png}
(the last checkpoint of each model). Several GPUs:
    torchrun --nproc_per_node=8 tools/analysis_tools/invariance.py cls ... --data ...
shards the images over the ranks and gathers the results on every rank (rank 0 writes).
See docs/analysis.md.
"""
import os

from stm_mm.engine.cli import run_cli
from stm_mm.tool_args import ToolArgumentParser, add_batch_size, add_input_size


def _floats(text):
    """'0:45:5' (start:stop:step, inclusive) or '0,5,10' -> list of numbers."""
    if ':' in text:
        start, stop, step = (float(v) for v in text.split(':'))
        n = int(round((stop - start) / step)) + 1
        values = [start + k * step for k in range(n)]
    else:
        values = [float(v) for v in text.split(',') if v]
    return [int(v) if float(v).is_integer() else v for v in values]


def parse_args(argv=None):
    from stm_mm.checkpoint_io import add_checkpoint_tool_options
    parser = ToolArgumentParser(__doc__)
    sub = parser.add_subparsers(dest='mode', required=True)

    def common(p, out_default):
        p.add_argument('config')
        p.add_argument('checkpoint', help='checkpoint file, "none", or several checkpoints of '
                       'one run: a work dir (its epoch_*/iter_*.pth) or a quoted glob')
        p.add_argument('--compare', nargs='+', default=[], metavar='CONFIG:CKPT[:LABEL]',
                       help='more models (CKPT as above), drawn in the same figure')
        p.add_argument('--label', help='name of the first model in figures')
        p.add_argument('--out-dir', default=out_default)
        add_batch_size(p, None, help='images per batch (cls: 32, det: 1)')
        p.add_argument('--device', default=None, help='default: cuda if available, else cpu '
                       '(under torchrun: cuda:LOCAL_RANK)')
        p.add_argument('--no-progress', action='store_true')
        p.add_argument('--threads', type=int, default=None,
                         help='CPU threads of torch (1 is much faster on a busy machine)')
        add_checkpoint_tool_options(p)

    c = sub.add_parser('cls', help='translation and rotation (classification)')
    common(c, 'work_dirs/invariance')
    c.add_argument('--data', default=None,
                   help='image folder: class sub-folders in sorted order = labels (ImageNet val '
                   'layout), or unlabelled images; default: the held-out digits (360 images)')
    c.add_argument('--ann-file', default=None,
                   help='mmpretrain list file ("relative/path label" per line) under --data')
    c.add_argument('--num-images', type=int, default=100,
                   help='images spread over the set (default 100; 0 = all, e.g. 50000 for '
                   'ImageNet val)')
    add_input_size(c, None, help='view side, square (default: the config test pipeline crop, '
                   '224 for ImageNet, 32 for digits)')
    c.add_argument('--resize', type=int, default=None,
                   help='shorter side before cropping (default int(input_size / crop_ratio): '
                   '256 at 224, 36 at 32)')
    c.add_argument('--crop-ratio', type=float, default=0.875)
    c.add_argument('--transforms', nargs='+', choices=['translation', 'rotation'],
                   default=['translation', 'rotation'])
    c.add_argument('--shifts', type=_floats, default=None,
                   help='pixels, "start:stop:step" or "a,b,c" (default: 0:64:4 scaled by '
                   'img_size/224, e.g. 0:9:1 at 32)')
    c.add_argument('--angles', type=_floats, default=list(range(0, 46, 5)),
                   help='degrees (default 0:45:5)')
    c.add_argument('--translation-mode', choices=['crop', 'circular'], default='crop',
                   help='crop: the authors\' moved crop with zero padding; circular: roll')
    c.add_argument('--rotation-mode', choices=['pre', 'post'], default='pre',
                   help='rotate before (default) or after the centre crop')
    c.add_argument('--seed', type=int, default=0, help='seed of the translation directions')
    c.add_argument('--plot-accuracy', action='store_true',
                   help='add an accuracy row to the figure')

    d = sub.add_parser('det', help='scale (detection box mAP against the scale-1 predictions)')
    common(d, 'work_dirs/invariance')
    d.add_argument('--data', default=None,
                   help='image folder or COCO json (default: the config\'s test set)')
    d.add_argument('--img-dir', default=None, help='images of a --data COCO json')
    d.add_argument('--num-images', type=int, default=20, help='0 = all (COCO val: 5000)')
    d.add_argument('--scales', type=_floats, default=[0.25 * k for k in range(1, 13)],
                   help='scale factors (default 0.25:3.0:0.25)')
    d.add_argument('--gt-score-thr', type=float, default=0.3,
                   help='scale-1 predictions with at least this score are the ground truth')

    p = sub.add_parser('plot', help='one figure from result JSON files')
    p.add_argument('results', nargs='+')
    p.add_argument('--out', required=True)
    p.add_argument('--plot-accuracy', action='store_true')
    p.add_argument('--debug', action='store_true', help='show tracebacks of errors')
    args = parser.parse_args(argv)
    size = getattr(args, 'input_size', None)
    if size is not None and size[0] != size[1]:
        parser.error(f'the views are square, got --input-size {size[0]} {size[1]}; fix: give '
                     'one value')
    return args


def run(args):
    from stm_mm.analysis import invariance as inv
    if args.mode == 'plot':
        from stm_mm.analysis.plotting import plot_invariance
        plot_invariance(inv.merge_results(args.results), args.out, accuracy=args.plot_accuracy)
        print(f'[invariance] wrote {args.out}')
        return
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device
    if device is None:
        local = os.environ.get('LOCAL_RANK')
        device = ('cuda' if local is None else f'cuda:{local}') if torch.cuda.is_available() \
            else 'cpu'
    models = [(args.config, args.checkpoint, args.label)]
    models += [inv.parse_model_spec(s) for s in args.compare]
    progress = not args.no_progress
    if args.mode == 'cls':
        inv.run_classification(
            models, args.out_dir, data=args.data, ann_file=args.ann_file,
            num_images=args.num_images or None, img_size=args.input_size and args.input_size[0], resize=args.resize,
            crop_ratio=args.crop_ratio, translations=args.shifts, rotations=args.angles,
            transforms=args.transforms, translation_mode=args.translation_mode,
            rotation_mode=args.rotation_mode, batch_size=args.batch_size or 32, device=device,
            seed=args.seed, progress=progress, accuracy_plot=args.plot_accuracy)
    else:
        inv.run_detection(models, args.out_dir, data=args.data,
                          num_images=args.num_images or None, factors=args.scales,
                          gt_score_thr=args.gt_score_thr, batch_size=args.batch_size or 1,
                          device=device, progress=progress, img_dir=args.img_dir)
    if int(os.environ.get('RANK', '0')) == 0:
        print(f'[invariance] wrote {args.out_dir}/invariance_{args.mode}.{{json,csv,png}}')


def main(argv=None):
    """Errors end the process with one line ``error: ...`` and exit code 2 (``--debug``:
    the traceback)."""
    run_cli(run, parse_args(argv))


if __name__ == '__main__':
    main()
