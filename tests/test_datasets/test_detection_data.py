"""A detection config (Mask R-CNN, digit scenes) on a COCO file with bad annotations: stopped
before training with the ids, or trained on a cleaned copy with --skip-invalid."""
import json
import os.path as osp
import uuid

import pytest
from mmengine.config import Config

from stm_mm.errors import DataValidationError
from stm_mm.engine import apply_cli_options, build_runner

from ..helpers.coco import corrupt, make_coco, write
from ..helpers.tiny_training import ROOT, checkpoints, log_text

CONFIG = osp.join(ROOT, 'configs', 'det', 'digit_scenes', 'u_dwconv_micro_maskrcnn_digits.py')


def _break(d):
    d['annotations'][0]['bbox'] = [50, 50, 30, 30]        # outside the 64x64 image
    d['annotations'][3]['category_id'] = 42               # unknown category
    d['annotations'][5]['segmentation'] = [[1, 1, 2, 2]]  # degenerate polygon
    d['images'][3]['file_name'] = 'lost.png'              # missing image file


def _cfg(root, ann, work_dir, **kw):
    cfg = Config.fromfile(CONFIG)
    options = {
        'model.backbone.init_cfg': None,
        'train_cfg.max_iters': 2, 'train_cfg.val_interval': 2,
        'default_hooks.logger.interval': 1,
        'randomness': dict(seed=0),
        'experiment_name': f'rel_det_{uuid.uuid4().hex[:8]}',
        'val_evaluator.ann_file': ann,
    }
    for split in ('train', 'val'):
        options.update({
            f'{split}_dataloader.dataset.data_root': root,
            f'{split}_dataloader.dataset.ann_file': ann,
            f'{split}_dataloader.dataset.data_prefix': dict(img='img/'),
            f'{split}_dataloader.batch_size': 2,
            f'{split}_dataloader.num_workers': 0,
            f'{split}_dataloader.persistent_workers': False,
        })
    return apply_cli_options(cfg, work_dir=work_dir, cfg_options=options, **kw)


@pytest.fixture(scope='module')
def broken_coco(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('det_coco'))
    ann = write(corrupt(make_coco(root), _break), osp.join(root, 'instances.json'))
    return root, ann


def test_bad_annotations_stop_a_detection_run(broken_coco, tmp_path):
    root, ann = broken_coco
    work_dir = str(tmp_path / 'work')
    runner = build_runner(_cfg(root, ann, work_dir))
    with pytest.raises(DataValidationError) as info:
        runner.train()
    lines = str(info.value).splitlines()
    assert lines[0] == f'train dataset: {ann}: 3 invalid annotation(s), 1 invalid image(s)'
    assert lines[1:5] == [
        f'  image id 4: image file missing: {root}/img/lost.png',
        '  annotation id 1, image id 1: bbox [50, 50, 30, 30] extends outside the 64x64 image',
        '  annotation id 4, image id 2: unknown category_id 42 (categories: [1, 2, 3, 4, 5, 6, '
        '7, 8, 9, 10])',
        '  annotation id 6, image id 3: polygon 0 is degenerate: 4 coordinates (needs an even '
        'count, at least 3 points)',
    ]
    assert lines[-1].startswith('fix: fix the annotation file, or pass --skip-invalid')
    assert runner.iter == 0 and checkpoints(work_dir) == []


def test_skip_invalid_trains_on_a_cleaned_copy(broken_coco, tmp_path):
    root, ann = broken_coco
    work_dir = str(tmp_path / 'work')
    runner = build_runner(_cfg(root, ann, work_dir, skip_invalid=True))
    runner.train()
    assert runner.iter == 2 and 'iter_2.pth' in checkpoints(work_dir)
    log = log_text(work_dir)
    cleaned = {split: osp.join(work_dir, 'cleaned_annotations', f'{split}_instances.json')
               for split in ('train', 'val')}
    assert (f'train dataset: --skip-invalid dropped 5 annotation(s) and 1 image(s) from {ann} '
            f'(4 problem(s), listed in train_instances_problems.txt); using the cleaned copy '
            f'{cleaned["train"]}') in log
    assert f'val evaluator reads the cleaned {cleaned["val"]}' in log
    with open(cleaned['train']) as f:
        data = json.load(f)
    assert [img['id'] for img in data['images']] == [1, 2, 3]
    assert [a['id'] for a in data['annotations']] == [2, 3, 5]
    with open(ann) as f:  # the user's file is untouched
        assert len(json.load(f)['annotations']) == 8
