"""Grad-CAM of several classifiers on the same images, one figure (docs/analysis.md).

    python tools/analysis_tools/grad_cam.py --models CONFIG:CKPT[:LABEL] ... \
        --images IMAGE[@SIZE] ... [--layer NAME] [--out cam.png] [--json cam.json]

Each image is resized (shorter side, bicubic) and centre-cropped to SIZE (default: the config's
test crop, 32 for the digits) and normalised as the config says. The map is taken at ``--layer``,
by default the deepest ``backbone.stage_norms.I`` whose map is at least 4x4 at that size (stage 1
at 32 px, stage 3 at 224 px), for the top-1 class, which the caption names with its probability.
CKPT may be ``none`` (initialised weights).
"""
import json
import os.path as osp
import sys

from stm_mm.checkpoint_io import add_checkpoint_tool_options
from stm_mm.engine.cli import run_cli
from stm_mm.tool_args import ToolArgumentParser, add_device, add_json


def parse_args(argv=None):
    parser = ToolArgumentParser(description=__doc__)
    parser.add_argument('--models', nargs='+', required=True, metavar='CONFIG:CKPT[:LABEL]',
                        help='classifiers, one row each')
    parser.add_argument('--images', nargs='+', required=True, metavar='IMAGE[@SIZE]',
                        help='images, one column each; @SIZE sets the input side')
    parser.add_argument('--layer', help='target module (default: see above)')
    parser.add_argument('--out', default='grad_cam.png', help='the figure')
    add_json(parser, help='write the top-1 class, probability and layer of every cell here')
    add_device(parser)
    add_checkpoint_tool_options(parser)
    return parser.parse_args(argv)


def parse_image(spec):
    """``'IMAGE[@SIZE]'`` -> ``(path, size or None)``, the file checked."""
    path, _, size = spec.rpartition('@') if '@' in spec else (spec, '', '')
    if size and not size.isdigit():
        raise ValueError(f'--images {spec}: SIZE must be a positive integer, e.g. {path}@224')
    if not osp.isfile(path):
        raise ValueError(f'--images {spec}: {path} not found; fix: pass an existing image file')
    return path, int(size) if size else None


def test_crop(cfg):
    """The square side of the config's test pipeline (its ``CenterCrop``), else 224."""
    pipeline = cfg.get('test_dataloader', {}).get('dataset', {}).get('pipeline', [])
    for step in pipeline:
        if step.get('type') == 'CenterCrop':
            size = step['crop_size']
            return size if isinstance(size, int) else size[0]
    return 224


def run(args):
    import numpy as np
    import torch
    from PIL import Image

    from stm_mm.analysis.erf import _pil_to_tensor255, resize_centre_crop
    from stm_mm.analysis.grad_cam import default_layer, grad_cam, overlay, plot_grad_cam_grid
    from stm_mm.analysis.loaded_model import load_model, parse_model_spec

    device = args.device
    specs = [parse_model_spec(s) for s in args.models]
    images = [parse_image(s) for s in args.images]
    rows, records, columns = [], [], None
    for config, checkpoint, label in specs:
        loaded = load_model(config, checkpoint, device=device, label=label)
        cells, titles = [], []
        for path, size in images:
            side = size or test_crop(loaded.cfg)
            layer = args.layer or default_layer(side)
            picture = resize_centre_crop(Image.open(path).convert('RGB'), side)
            pixels = _pil_to_tensor255(picture, loaded.in_channels)[None].to(device)
            cams, logits = grad_cam(loaded.model, loaded.normalise(pixels), layer)
            prob, cls = torch.softmax(logits.double(), 1)[0].max(0)
            cells.append((overlay(np.asarray(picture), cams[0]), f'{int(cls)}: {float(prob):.2f}'))
            titles.append(f'{osp.basename(path)} {side}px\n{layer.replace("backbone.", "")}')
            records.append(dict(model=loaded.label, image=path, size=side, layer=layer,
                                top1=int(cls), probability=round(float(prob), 4)))
        rows.append((loaded.label, cells))
        columns = columns or titles
    plot_grad_cam_grid(rows, columns, args.out)
    print(f'[grad_cam] wrote {args.out}')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(records, f, indent=1)
        print(f'[grad_cam] wrote {args.json}')
    return 0


def main(argv=None):
    """Errors end the process with one line ``error: ...`` and exit code 2 (``--debug``:
    the traceback)."""
    return run_cli(run, parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())
