"""End to end on digit scenes (slow): classification checkpoint -> cls2det -> Mask R-CNN training
with tools/train.py -> evaluation with tools/test.py (metrics JSON, COCO result files), and the
same training through tools/dist_train.sh with 2 gloo processes."""
import glob
import json
import os
import os.path as osp
import random
import subprocess

import pytest
import torch

from stm_mm.datasets.digit_scenes import generate_digit_scenes

from .. import ROOT
from ..test_datasets.test_coco_metric import COCO_KEYS
from ..test_checkpoint.test_transfer import build_classifier, random_state
from ..helpers.fork_python import python

pytestmark = pytest.mark.slow
CONFIG = 'configs/det/digit_scenes/u_halo_micro_maskrcnn_digits.py'


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp('e2e')
    scenes = str(root / 'scenes') + '/'
    generate_digit_scenes(scenes, num_train=8, num_val=4)
    cls = str(root / 'cls_halo_micro.pth')
    torch.save({'state_dict': random_state(build_classifier('halo'))}, cls)
    det = str(root / 'det_backbone.pth')
    run([python(), 'tools/model_converters/cls2det.py', cls, det, '--config', CONFIG])
    return dict(root=root, scenes=scenes, backbone=det)


def run(cmd, timeout=300, env=None):
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, **(env or {})))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def options(ws, iters):
    scenes = ws['scenes']
    return ['--cfg-options', f'model.backbone.init_cfg.checkpoint={ws["backbone"]}',
            f'train_dataloader.dataset.data_root={scenes}',
            f'val_dataloader.dataset.data_root={scenes}',
            f'test_dataloader.dataset.data_root={scenes}',
            f'val_evaluator.ann_file={scenes}annotations/instances_val.json',
            f'test_evaluator.ann_file={scenes}annotations/instances_val.json',
            f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
            'train_dataloader.batch_size=2', 'train_dataloader.num_workers=0',
            'train_dataloader.persistent_workers=False', 'val_dataloader.num_workers=0',
            'val_dataloader.persistent_workers=False', 'default_hooks.logger.interval=1',
            'model.test_cfg.rcnn.score_thr=0.0']


def read_metrics(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def test_train_evaluate_and_dump(workspace):
    work = str(workspace['root'] / 'work')
    proc = run([python(), 'tools/train.py', CONFIG, '--work-dir', work] + options(workspace, 4))
    assert (f'PretrainedClassifier: loaded 257 backbone tensors (raw weights) from '
            f'{workspace["backbone"]}') in proc.stdout + proc.stderr
    [scalars] = glob.glob(osp.join(work, '*', 'vis_data', 'scalars.json'))
    val = [r for r in read_metrics(scalars) if 'coco/bbox_mAP' in r]
    assert val and set(COCO_KEYS) <= set(val[-1])
    checkpoint = osp.join(work, 'iter_4.pth')
    assert osp.isfile(checkpoint)

    test_dir = str(workspace['root'] / 'test')
    run([python(), 'tools/test.py', CONFIG, checkpoint, '--work-dir', test_dir] +
        options(workspace, 4))
    [metrics_file] = [p for p in glob.glob(osp.join(test_dir, '*', '*.json'))
                      if osp.basename(p)[:-5] == osp.basename(osp.dirname(p))]
    metrics = read_metrics(metrics_file)[-1]
    assert set(COCO_KEYS) <= set(metrics)
    assert all(-1.0 <= metrics[k] <= 1.0 for k in COCO_KEYS)

    prefix = str(workspace['root'] / 'dump' / 'results')
    run([python(), 'tools/test.py', CONFIG, checkpoint, '--work-dir', test_dir, '--coco-json',
         prefix] + options(workspace, 4))
    for task in ('bbox', 'segm'):
        with open(f'{prefix}.{task}.json') as f:
            results = json.load(f)
        assert results and {'image_id', 'category_id', 'score'} <= set(results[0])
        assert ('segmentation' if task == 'segm' else 'bbox') in results[0]


def test_dist_train_two_processes(workspace):
    work = str(workspace['root'] / 'dist')
    run(['bash', 'tools/dist_train.sh', CONFIG, '2', '--work-dir', work] +
        options(workspace, 3) + ['train_dataloader.batch_size=1'],
        env=dict(PORT=str(random.randint(29600, 29999)), PYTHON=python()), timeout=400)
    assert osp.isfile(osp.join(work, 'iter_3.pth'))
    [scalars] = glob.glob(osp.join(work, '*', 'vis_data', 'scalars.json'))
    assert any('coco/segm_mAP' in r for r in read_metrics(scalars))
