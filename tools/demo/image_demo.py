"""Classify one image: print the top-k classes with scores and draw them on the image.

    python tools/demo/image_demo.py IMAGE CONFIG [CHECKPOINT] [--topk 5] [--out vis.png]

Built on mmpretrain's ``ImageClassificationInferencer``. CONFIG is a classification config
(``configs/cls/...``) or a model-zoo name (``u-halo-tiny_in1k``, see ``mmpretrain.list_models('u-*')``).
CHECKPOINT is an MMEngine checkpoint or the authors' release file (converted while loading,
``stm_mm/zoo.py``); without it a zoo name loads its release weights (downloaded once) and a
config its ``load_from``, else the model keeps its initial weights (said so in the output).
A model-only config (``configs/_base_/models/...``) is fed with the ImageNet test pipeline,
normalisation and class names of ``configs/_base_/datasets/imagenet_bs128_unified.py``.
Class names come from the checkpoint (``meta.dataset_meta``), else from the config's dataset.
"""
import os.path as osp
import sys

import stm_mm  # noqa: F401  (registers the models, the zoo and the checkpoint loaders)
from stm_mm.checkpoint_io import add_checkpoint_tool_options
from stm_mm.engine.cli import run_cli
from stm_mm.tool_args import ToolArgumentParser, add_device

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
IMAGENET_DATA = osp.join(ROOT, 'configs/_base_/datasets/imagenet_bs128_unified.py')


def parse_args(argv=None):
    parser = ToolArgumentParser(__doc__.split('\n\n')[0])
    parser.add_argument('image', help='image file')
    parser.add_argument('config', help='config file or model-zoo name')
    parser.add_argument('checkpoint', nargs='?', help='checkpoint file or URL')
    parser.add_argument('--topk', type=int, default=5, help='classes to print and draw')
    parser.add_argument('--out', help='write the image with the top-k classes drawn here')
    add_device(parser)
    add_checkpoint_tool_options(parser)
    return parser.parse_args(argv)


def check_files(image, config, checkpoint, config_dir):
    """One line naming a missing input and the fix, or None (zoo names and URLs pass)."""
    if not osp.isfile(image):
        return f'image {image} not found; fix: pass an existing image file'
    if config.endswith('.py') and not osp.isfile(config):
        return f'config {config} not found; fix: pass a config file under {config_dir}'
    if checkpoint and '://' not in checkpoint and not osp.isfile(checkpoint):
        return f'checkpoint {checkpoint} not found; fix: pass an existing checkpoint file'
    return None


def with_test_pipeline(config):
    """``config`` (a zoo name or a file) as the inferencer takes it: a model-only config gets
    the ImageNet test pipeline, normalisation and class names (a note says so)."""
    if not config.endswith('.py'):
        return config
    from mmengine.config import Config
    cfg = Config.fromfile(config)
    if cfg.get('test_dataloader') is None:
        imagenet = Config.fromfile(IMAGENET_DATA)
        cfg.test_dataloader = dict(
            dataset=dict(type=imagenet.dataset_type, pipeline=imagenet.test_pipeline))
        cfg.data_preprocessor = cfg.get('data_preprocessor') or imagenet.data_preprocessor
        print(f'note: {config} has no test pipeline; using the ImageNet one (resize 256, centre '
              'crop 224, ImageNet mean/std and class names)')
    return cfg


def visualize_topk(image_path, sample, classes, out_file):
    """Draw the top-k labels of ``sample`` (its ``pred_label`` holds them) on the image."""
    import mmcv
    from mmpretrain.visualization import UniversalVisualizer

    image = mmcv.imread(image_path, channel_order='rgb')
    short = min(image.shape[:2])
    UniversalVisualizer().visualize_cls(
        image, sample, classes=classes, resize=256 if short < 256 else None, draw_gt=False,
        out_file=out_file)


def run(args):
    problem = check_files(args.image, args.config, args.checkpoint, 'configs/cls/')
    if args.topk < 1:
        problem = f'--topk {args.topk} must be >= 1; fix: e.g. --topk 5'
    if problem:
        raise ValueError(problem)
    from mmpretrain import ImageClassificationInferencer

    inferencer = ImageClassificationInferencer(with_test_pipeline(args.config),
                                               pretrained=args.checkpoint or True,
                                               device=args.device)
    weights = args.checkpoint or getattr(inferencer.model._metainfo, 'weights', None) or \
        inferencer.config.get('load_from')
    sample = inferencer(args.image, return_datasamples=True)[0]
    scores = sample.pred_score
    topk = scores.topk(min(args.topk, scores.numel()))
    classes = inferencer.classes
    print(f'{args.image}: top-{len(topk.indices)} of {scores.numel()} classes '
          f'({args.config}, {weights or "initial weights: the scores mean nothing"})')
    for rank, (index, score) in enumerate(zip(topk.indices.tolist(), topk.values.tolist()), 1):
        name = classes[index] if classes is not None else str(index)
        print(f'{rank:3d}. {score:.4f}  {index:4d} {name}')
    if args.out:
        sample.set_pred_label(topk.indices)
        visualize_topk(args.image, sample, classes, args.out)
        print(f'wrote {args.out}')
    return 0


def main(argv=None):
    """Errors end the process with one line ``error: ...`` and exit code 2 (``--debug``:
    the traceback)."""
    return run_cli(run, parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())
