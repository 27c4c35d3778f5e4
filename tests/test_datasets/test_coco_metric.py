"""CocoMetric (bbox + segm) on the predictions of a real (untrained) detector on digit scenes."""
import copy

import torch
from mmengine.dataset import pseudo_collate

from stm_mm.datasets.digit_scenes import generate_digit_scenes

from ..helpers.detectors import digits_config, mmdet_scope, register, slim_detector

COCO_KEYS = [f'coco/{task}_{name}' for task in ('bbox', 'segm')
             for name in ('mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l')]


def test_coco_metric_on_model_predictions(tmp_path):
    from mmdet.registry import DATASETS
    from mmengine.evaluator import Evaluator
    register()
    root = str(tmp_path / 'scenes') + '/'
    generate_digit_scenes(root, num_train=1, num_val=3)
    cfg = digits_config('dwconv')
    data_cfg = copy.deepcopy(cfg.val_dataloader.dataset)
    data_cfg.data_root = root
    metric_cfg = copy.deepcopy(cfg.val_evaluator)
    metric_cfg.ann_file = root + 'annotations/instances_val.json'
    torch.manual_seed(0)
    model = slim_detector('dwconv', score_thr=0.0).eval()  # keep every detection
    with mmdet_scope():
        dataset = DATASETS.build(data_cfg)
        evaluator = Evaluator(metric_cfg)
    evaluator.dataset_meta = dataset.metainfo
    with torch.no_grad():
        batch = pseudo_collate([dataset[i] for i in range(len(dataset))])
        outputs = model.test_step(batch)
    assert all(len(o.pred_instances.scores) > 0 for o in outputs)
    evaluator.process(outputs, batch)
    metrics = evaluator.evaluate(len(dataset))
    assert set(COCO_KEYS) <= set(metrics)
    for key in COCO_KEYS:
        assert -1.0 <= metrics[key] <= 1.0
