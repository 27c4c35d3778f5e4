"""Decode every image of a dataset split in parallel and list the ones that cannot be decoded.

    python tools/analysis_tools/check_images.py CONFIG [--split train|val|test] [--workers N]
        [--out FILE] [--cfg-options k=v]

The images are read and decoded the way training reads them (``decode_image``: mmcv's decoder,
content sniffing, truncation check; the pipeline's ``color_type`` and ``imdecode_backend``).
The unreadable ones are written to FILE (default ``work_dirs/<config>/unreadable_<split>.txt``),
one ``path<TAB>reason`` a line, for ``tools/train.py CONFIG --skip-invalid --skip-list FILE``.
Exit status 0 when every image decodes, 1 when some do not, 2 for a bad config.
"""
import os
import os.path as osp
import sys
import time
from functools import partial
from multiprocessing import Pool

from mmengine.config import Config, DictAction
from mmengine.registry import DATASETS, init_default_scope
from mmengine.utils import ProgressBar

import stm_mm  # noqa: F401
from stm_mm.datasets.image_loading import image_problem
from stm_mm.datasets.validation import iter_datasets
from stm_mm.engine.cli import run_cli
from stm_mm.tool_args import ToolArgumentParser

def parse_args(argv=None):
    parser = ToolArgumentParser('Find the images of a split that cannot be decoded')
    parser.add_argument('config')
    parser.add_argument('--split', choices=['train', 'val', 'test'], default='train')
    parser.add_argument('--workers', type=int, default=os.cpu_count(),
                        help='decoding processes (default: all cores)')
    parser.add_argument('--out', help='the list of unreadable images (default: '
                        'work_dirs/<config>/unreadable_<split>.txt)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv)


def _load_settings(dataset_cfg):
    """``color_type`` and ``imdecode_backend`` of the first LoadImageFromFile of the pipeline."""
    for ds in iter_datasets(dataset_cfg):
        for t in ds.get('pipeline') or []:
            if isinstance(t, dict) and str(t.get('type', '')).endswith('LoadImageFromFile'):
                return dict(color_type=t.get('color_type', 'color'),
                            backend=t.get('imdecode_backend', 'cv2'))
    return dict(color_type='color', backend='cv2')


def image_paths(dataset_cfg):
    """The distinct ``img_path`` s of a dataset config, in dataset order (no pipeline runs)."""
    dataset = DATASETS.build(dataset_cfg)
    if hasattr(dataset, 'full_init'):
        dataset.full_init()
    paths = (dataset.get_data_info(i).get('img_path') for i in range(len(dataset)))
    return list(dict.fromkeys(p for p in paths if p))


def check_paths(paths, workers, settings):
    """``{path: reason}`` of the unreadable ones among ``paths``, with a progress bar."""
    bad = {}
    with Pool(max(1, workers)) as pool:
        progress = ProgressBar(len(paths), file=sys.stderr)
        for path, reason in pool.imap_unordered(partial(image_problem, **settings), paths,
                                                chunksize=64):
            progress.update()
            if reason:
                bad[path] = reason
    sys.stderr.write('\n')
    return bad


def check(args):
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    loader = cfg.get(f'{args.split}_dataloader')
    if not isinstance(loader, dict) or 'dataset' not in loader:
        raise ValueError(f'the config has no {args.split}_dataloader; fix: choose another '
                         '--split')
    paths = image_paths(loader['dataset'])
    start = time.perf_counter()
    bad = check_paths(paths, args.workers, _load_settings(loader['dataset']))
    seconds = time.perf_counter() - start
    name = osp.splitext(osp.basename(args.config))[0]
    out = args.out or osp.join('work_dirs', name, f'unreadable_{args.split}.txt')
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    with open(out, 'w') as f:
        f.writelines(f'{p}\t{r}\n' for p, r in sorted(bad.items()))
    print(f'{args.split}: {len(bad)} of {len(paths)} images cannot be decoded '
          f'({len(paths) / max(seconds, 1e-9):.0f} images/s with {args.workers} workers); '
          f'list: {out}')
    if bad:
        print(f'skip them: tools/train.py {args.config} --skip-invalid --skip-list {out}')
    return 1 if bad else 0


def main(argv=None):
    sys.exit(run_cli(check, parse_args(argv)))


if __name__ == '__main__':
    main()
