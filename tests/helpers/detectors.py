"""Helpers shared by the detection tests: configs, slim detectors, synthetic batches."""
import copy
import os.path as osp

import numpy as np
import torch
from mmengine.config import Config

from .. import ROOT


def det_config(stm, scale='micro'):
    return Config.fromfile(osp.join(ROOT, f'configs/det/u_{stm}_{scale}_maskrcnn.py'))


def digits_config(stm):
    return Config.fromfile(
        osp.join(ROOT, f'configs/det/digit_scenes/u_{stm}_micro_maskrcnn_digits.py'))


def stm_mm_to_mmdet2(state_dict, stm):
    """stm_mm detector keys -> the authors' mmdet 2.x keys: the inverse of
    :func:`stm_mm.authors_checkpoints.mmdet2_to_stm_mm`, to write checkpoints in their layout."""
    from stm_mm.converters import stm_mm_to_official
    backbone = {k: v for k, v in state_dict.items() if k.startswith('backbone.')}
    out = {'backbone.' + k: v for k, v in stm_mm_to_official(backbone, stm).items()}
    out.update((k, v) for k, v in state_dict.items() if not k.startswith('backbone.'))
    return out


def register():
    """Import mmdet's and stm_mm's modules into the registries (no default scope is set)."""
    from mmdet.utils import register_all_modules

    import stm_mm  # noqa: F401
    register_all_modules(init_default_scope=False)


def mmdet_scope():
    """Context manager: build with mmdet's registries as the default scope."""
    from mmengine.registry import DefaultScope
    return DefaultScope.overwrite_default_scope('mmdet')


def build_detector(cfg, init_cfg=None, device=None):
    """The config's detector (mmdet MODELS) with the backbone's init_cfg replaced."""
    from mmdet.registry import MODELS
    register()
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.backbone.init_cfg = init_cfg
    if device is not None:
        with torch.device(device):
            return MODELS.build(model_cfg)
    return MODELS.build(model_cfg)


def slim_detector(stm, **test_cfg):
    """Micro backbone + slim heads, 10 classes (the digit-scenes model), no pretrained weights."""
    cfg = digits_config(stm)
    cfg.model.test_cfg.rcnn.update(test_cfg)
    return build_detector(cfg)


def odd_sized_batch(sizes=((150, 203), (97, 131)), num_classes=10, seed=0):
    """Raw (un-normalised, un-padded) images with boxes, labels and bitmap masks."""
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData
    rng = np.random.default_rng(seed)
    inputs, samples = [], []
    for index, (h, w) in enumerate(sizes):
        inputs.append(torch.from_numpy(rng.integers(0, 256, (3, h, w), dtype=np.uint8)))
        boxes, masks = [], []
        for _ in range(3):
            bw, bh = int(rng.integers(16, w // 2)), int(rng.integers(16, h // 2))
            x0, y0 = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
            boxes.append([x0, y0, x0 + bw, y0 + bh])
            mask = np.zeros((h, w), np.uint8)
            mask[y0 + 2:y0 + bh - 2, x0 + 2:x0 + bw - 2] = 1
            masks.append(mask)
        sample = DetDataSample(metainfo=dict(img_id=index, img_shape=(h, w), ori_shape=(h, w),
                                             scale_factor=(1.0, 1.0), img_path=f'{index}.png'))
        sample.gt_instances = InstanceData(
            bboxes=torch.tensor(boxes, dtype=torch.float32),
            labels=torch.from_numpy(rng.integers(0, num_classes, len(boxes))),
            masks=BitmapMasks(np.stack(masks), h, w))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)
