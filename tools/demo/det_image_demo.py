"""Detect and segment objects in one image: print the detections, draw boxes and masks.

    python tools/demo/det_image_demo.py IMAGE CONFIG CHECKPOINT --out vis.png [--score-thr 0.3]

Built on mmdet's ``DetInferencer``. CONFIG is a detection config (``configs/det/...``);
CHECKPOINT an MMEngine checkpoint of it or the authors' mmdet 2.x release file (converted while
loading, ``stm_mm/zoo.py``). Detections scoring at least ``--score-thr`` are printed and drawn;
``--scale`` enlarges the drawing of small images (e.g. 4 for the 128x128 digit scenes).
"""
import os.path as osp
import sys

import stm_mm  # noqa: F401  (registers the models and the checkpoint loaders)
from image_demo import check_files
from stm_mm.checkpoint_io import add_checkpoint_tool_options
from stm_mm.engine.cli import run_cli
from stm_mm.tool_args import ToolArgumentParser, add_device


def parse_args(argv=None):
    parser = ToolArgumentParser(__doc__.split('\n\n')[0])
    parser.add_argument('image', help='image file')
    parser.add_argument('config', help='detection config file')
    parser.add_argument('checkpoint', help='checkpoint file or URL')
    parser.add_argument('--out', required=True, help='write the drawn image here')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='lowest score printed and drawn')
    parser.add_argument('--scale', type=float, default=1.0,
                        help='enlarge the image before drawing (boxes, masks and text with it)')
    add_device(parser)
    add_checkpoint_tool_options(parser)
    return parser.parse_args(argv)


def run(args):
    problem = check_files(args.image, args.config, args.checkpoint, 'configs/det/')
    if problem:
        raise ValueError(problem)
    import mmcv
    from mmdet.apis import DetInferencer

    inferencer = DetInferencer(args.config, args.checkpoint, device=args.device,
                               show_progress=False)
    sample = inferencer(args.image, return_datasamples=True)['predictions'][0]
    classes = inferencer.model.dataset_meta['classes']
    instances = sample.pred_instances
    keep = instances.scores >= args.score_thr
    instances = instances[keep]
    print(f'{args.image}: {len(instances)} detections with score >= {args.score_thr} '
          f'({args.config}, {args.checkpoint})')
    masks = instances.masks if 'masks' in instances else None
    for i in instances.scores.argsort(descending=True).tolist():
        box = ', '.join(f'{v:.1f}' for v in instances.bboxes[i].tolist())
        area = f'  mask {int(masks[i].sum())} px' if masks is not None else ''
        print(f'{instances.scores[i]:.3f}  {classes[instances.labels[i]]:<12} box [{box}]{area}')

    image = mmcv.imread(args.image, channel_order='rgb')
    if args.scale != 1:
        image = mmcv.imrescale(image, args.scale)
        sample.pred_instances = instances.clone()
        sample.pred_instances.bboxes = instances.bboxes * args.scale
        if masks is not None:
            sample.pred_instances.masks = _rescale_masks(masks, image.shape[:2])
    else:
        sample.pred_instances = instances
    inferencer.visualizer.add_datasample(osp.basename(args.image), image, sample, draw_gt=False,
                                         pred_score_thr=args.score_thr, out_file=args.out)
    print(f'wrote {args.out}')
    return 0


def main(argv=None):
    """Errors end the process with one line ``error: ...`` and exit code 2 (``--debug``:
    the traceback)."""
    return run_cli(run, parse_args(argv))


def _rescale_masks(masks, shape):
    """``(N, H, W)`` bool masks -> ``(N, *shape)`` by nearest-neighbour resizing."""
    import torch.nn.functional as F
    return F.interpolate(masks[None].float(), size=shape, mode='nearest')[0].bool()


if __name__ == '__main__':
    sys.exit(main())
