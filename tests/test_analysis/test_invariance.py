"""Invariance protocol on known answers: crop geometry, invariant-by-construction models, the
identity transforms, box mAP with a fake detector, and the tool end to end."""
import importlib.util
import json
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from stm_mm.analysis import invariance as inv

from .. import ROOT


def _cli():
    spec = importlib.util.spec_from_file_location(
        'invariance_cli', osp.join(ROOT, 'tools', 'analysis_tools', 'invariance.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _random_samples(n=12, size=32, seed=0):
    rng = np.random.default_rng(seed)
    return [(Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)), i % 10)
            for i in range(n)]


class GapLinear(nn.Module):
    """Global average pooling + linear: invariant to circular shifts by construction."""

    def __init__(self, classes=10):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 1)
        self.fc = nn.Linear(16, classes)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))


class FlatLinear(nn.Module):
    """A linear map of all pixels: sensitive to any change of the view."""

    def __init__(self, size=32, classes=10):
        super().__init__()
        self.fc = nn.Linear(3 * size * size, classes)

    def forward(self, x):
        return self.fc(x.flatten(1))


def test_shifted_crop_geometry():
    """10x10 image, crop 6: the centre crop is [2:8, 2:8]; moving its centre by 4 columns
    keeps columns 6..9 (4 of 6), zero-padded 1 left / 1 right; moving it up by 3 keeps rows
    0..4 (5 of 6), padded 0 top / 1 bottom."""
    img = torch.arange(100.).view(1, 10, 10) + 1
    assert inv.centre_box(10, 10, 6) == (2, 2)
    torch.testing.assert_close(inv.shifted_crop(img, 6, 0, 0), img[:, 2:8, 2:8])
    right = inv.shifted_crop(img, 6, 0, 4)
    torch.testing.assert_close(right[:, :, 1:5], img[:, 2:8, 6:10])
    assert right[:, :, [0, 5]].abs().sum() == 0
    up = inv.shifted_crop(img, 6, -3, 0)
    torch.testing.assert_close(up[:, 0:5], img[:, 0:5, 2:8])
    assert up[:, 5].abs().sum() == 0
    assert inv.shifted_crop(img, 6, 20, 0).abs().sum() == 0  # entirely outside: black


def test_translation_settings_and_directions():
    assert inv.default_translations(224) == list(range(0, 65, 4))
    assert inv.default_translations(32) == list(range(0, 10))
    assert len(inv.DIRECTIONS) == 7 and (1, -1) not in inv.DIRECTIONS  # authors' randint(7)
    views = inv.ViewMaker(32, seed=3)
    drawn = {views.direction(i, 8) for i in range(200)}
    assert drawn == set(inv.DIRECTIONS)
    assert views.direction(5, 8) == inv.ViewMaker(32, seed=3).direction(5, 8)  # reproducible
    assert views.resize == 36 and inv.ViewMaker(224).resize == 256


def test_circular_shift_invariant_model_scores_one():
    torch.manual_seed(0)
    samples = _random_samples()
    views = inv.ViewMaker(32, translation_mode='circular')
    shifts = [0, 1, 3, 8, 13]
    res = inv.classification_invariance(GapLinear(), samples, {'translation': shifts}, views,
                                        batch_size=5)
    assert res['num_images'] == 12
    assert res['translation']['consistency'] == [1.0] * len(shifts)
    # not vacuous: a pixel-wise linear model does change its mind under the same shifts
    flat = inv.classification_invariance(FlatLinear(), samples, {'translation': shifts}, views)
    assert flat['translation']['consistency'][0] == 1.0
    assert min(flat['translation']['consistency'][1:]) < 1.0


@pytest.mark.parametrize('rotation_mode', ['pre', 'post'])
def test_zero_rotation_and_zero_shift_are_identities(rotation_mode):
    """With a model that reacts to any pixel change, rotation 0 and shift 0 still give
    consistency 1 and the standard view's accuracy."""
    torch.manual_seed(0)
    samples = _random_samples(8)
    views = inv.ViewMaker(32, rotation_mode=rotation_mode)
    res = inv.classification_invariance(FlatLinear(), samples,
                                        {'rotation': [0, 10], 'translation': [0]}, views)
    assert res['rotation']['consistency'][0] == 1.0
    assert res['translation']['consistency'][0] == 1.0
    assert res['rotation']['accuracy'][0] == res['standard_accuracy']
    assert res['rotation']['soft_ce'][0] == pytest.approx(
        res['translation']['soft_ce'][0])
    img = samples[0][0]
    torch.testing.assert_close(views.rotated(img, 0), views.standard(img))
    torch.testing.assert_close(views.translated(img, 0, 0), views.standard(img))


def test_rotation_is_counter_clockwise_with_black_fill():
    img = Image.new('RGB', (32, 32))
    img.paste((255, 255, 255), (16, 14, 32, 18))  # a bar from the centre to the right edge
    views = inv.ViewMaker(32, resize=32, rotation_mode='post')
    rotated = views.rotated(img, 90)[0]
    assert rotated[:8, 14:18].mean() > 0.9  # now points up
    assert rotated[24:, 14:18].mean() < 0.1
    corner = views.rotated(Image.new('RGB', (32, 32), (255, 255, 255)), 45)[0]
    assert corner[0, 0] == 0 and corner[16, 16] == 1  # black fill outside the rotated image


def test_classification_metrics_by_hand():
    records = [
        dict(index=0, label=1, top1=1, top5=True, settings={'rotation/5': (1, True, 0.5)}),
        dict(index=1, label=2, top1=3, top5=True, settings={'rotation/5': (2, True, 0.1)}),
        dict(index=2, label=0, top1=0, top5=True, settings={'rotation/5': (4, False, 0.3)}),
        dict(index=3, label=-1, top1=7, top5=False, settings={'rotation/5': (7, False, 0.7)}),
    ]
    res = inv.classification_metrics(records + records[:1], {'rotation': [5]})
    assert res['num_images'] == 4  # the duplicate (as from padded shards) counts once
    assert res['standard_accuracy'] == pytest.approx(2 / 3)
    assert res['rotation']['consistency'] == [pytest.approx(2 / 4)]  # images 0 and 3
    assert res['rotation']['accuracy'] == [pytest.approx(2 / 3)]  # images 0 and 1
    assert res['rotation']['accuracy_top5'] == [pytest.approx(2 / 3)]
    assert res['rotation']['soft_ce'] == [pytest.approx(0.4)]


# ----------------------------------------------------------------------------- detection
BOXES = [[(4, 4, 12, 10), (16, 18, 28, 30)], [(2, 20, 10, 30)], [(8, 8, 24, 24)]]


def _fake_detector(map_back=True):
    """Renders each 'image' (a list of boxes) at scale f, finds the bright components and
    returns their boxes divided by f (or not, for the broken variant). Label = component index
    parity; score decreasing with the index."""
    from scipy import ndimage

    def predict(images, factor):
        out = []
        for boxes in images:
            side = int(round(32 * factor))
            canvas = np.zeros((side, side), dtype=np.uint8)
            for x1, y1, x2, y2 in boxes:
                canvas[int(round(y1 * factor)):int(round(y2 * factor)),
                       int(round(x1 * factor)):int(round(x2 * factor))] = 1
            found = ndimage.find_objects(ndimage.label(canvas)[0])
            b = np.array([[s[1].start, s[0].start, s[1].stop, s[0].stop] for s in found],
                         dtype=np.float64).reshape(-1, 4)
            if map_back:
                b = b / factor
            out.append(dict(bboxes=b, labels=np.arange(len(b)) % 2,
                            scores=np.linspace(0.9, 0.5, len(b))))
        return out

    return predict


def test_box_map_by_hand():
    gt = [dict(bboxes=np.array([[0, 0, 10, 10.]]), labels=np.array([1]))]
    same = [dict(bboxes=gt[0]['bboxes'], labels=np.array([1]), scores=np.array([0.9]))]
    assert inv.box_map(gt, same)['bbox_mAP'] == pytest.approx(1.0)
    wrong_class = [dict(bboxes=gt[0]['bboxes'], labels=np.array([2]), scores=np.array([0.9]))]
    assert inv.box_map(gt, wrong_class)['bbox_mAP'] == 0.0
    none = [dict(bboxes=np.zeros((0, 4)), labels=np.zeros(0), scores=np.zeros(0))]
    assert inv.box_map(gt, none)['bbox_mAP'] == 0.0
    empty_gt = [dict(bboxes=np.zeros((0, 4)), labels=np.zeros(0))]
    assert inv.box_map(empty_gt, same)['bbox_mAP'] is None


def test_scale_one_gives_map_one_and_mapping_back_matters():
    factors = [0.5, 1.0, 2.0, 3.0]
    res = inv.scale_invariance(_fake_detector(), BOXES, factors, gt_score_thr=0.0)
    assert res['scale']['num_gt'] == 4
    assert res['scale']['bbox_mAP'][1] == pytest.approx(1.0)
    # integer up-scaling of integer boxes is exact, so mapped-back boxes match perfectly
    assert res['scale']['bbox_mAP'][2] == pytest.approx(1.0)
    assert res['scale']['bbox_mAP'][3] == pytest.approx(1.0)
    broken = inv.scale_invariance(_fake_detector(map_back=False), BOXES, factors, 0.0)
    assert broken['scale']['bbox_mAP'][1] == pytest.approx(1.0)
    assert broken['scale']['bbox_mAP'][2] == 0.0  # boxes twice too large: IoU <= 1/4


def test_ground_truth_threshold_keeps_low_scores_out():
    res = inv.scale_invariance(_fake_detector(), BOXES, [1.0], gt_score_thr=0.8)
    assert res['scale']['num_gt'] == 3  # the 0.5-score second box of image 0 is dropped
    assert res['scale']['bbox_mAP'] == [pytest.approx(1.0)]


def test_scaled_test_pipeline():
    pipeline = [dict(type='LoadImageFromFile'), dict(type='Resize', scale=(128, 128),
                                                     keep_ratio=True),
                dict(type='LoadAnnotations', with_bbox=True), dict(type='PackDetInputs')]
    scaled = inv.scaled_test_pipeline(pipeline, 0.5)
    assert [s['type'] for s in scaled] == ['LoadImageFromFile', 'Resize', 'PackDetInputs']
    assert scaled[1]['scale'] == (64, 64) and pipeline[1]['scale'] == (128, 128)
    coco = inv.scaled_test_pipeline([dict(type='Resize', scale=(1333, 800))], 2.5)
    assert coco[0]['scale'] == (3332, 2000)
    bare = inv.scaled_test_pipeline([dict(type='LoadImageFromFile'), dict(type='Pack')], 3.0)
    assert bare[1] == dict(type='Resize', scale_factor=3.0, keep_ratio=True)


def test_shards_cover_every_image_once():
    n, world = 11, 3
    parts = [inv.shard(n, r, world) for r in range(world)]
    assert sorted(i for p in parts for i in p) == list(range(n))
    assert inv.init_distributed() == (0, 1)  # single process without torchrun


@pytest.mark.slow
def test_invariance_tool_end_to_end(tmp_path):
    """cls mode on an initialised micro classifier (a few digits), then the plot mode merging
    its JSON with a detection-style result."""
    cfg = osp.join(ROOT, 'configs/_base_/models/u_dwconv_micro.py')
    out = tmp_path / 'inv'
    _cli().main(['cls', cfg, 'none', '--num-images', '6', '--input-size', '32', '--shifts', '0,3',
                 '--angles', '0:10:10', '--batch-size', '6', '--out-dir', str(out),
                 '--no-progress'])
    res = json.loads((out / 'invariance_cls.json').read_text())
    model = res['models']['U-DWConv-micro']
    assert model['translation']['magnitude'] == [0, 3]
    assert model['rotation']['magnitude'] == [0, 10]
    assert model['translation']['consistency'][0] == 1.0
    assert model['rotation']['consistency'][0] == 1.0
    assert res['settings']['resize'] == 36 and res['settings']['num_images'] == 6
    rows = (out / 'invariance_cls.csv').read_text().strip().splitlines()
    assert len(rows) == 1 + 4 and rows[0].startswith('model,transform,magnitude')
    assert (out / 'invariance_cls.png').stat().st_size > 1000
    det = dict(mode='det', models={'U-DWConv-micro': dict(scale=dict(
        magnitude=[0.5, 1.0], bbox_mAP=[0.4, 1.0]))})
    (tmp_path / 'det.json').write_text(json.dumps(det))
    fig = tmp_path / 'all.png'
    _cli().main(['plot', str(out / 'invariance_cls.json'), str(tmp_path / 'det.json'), '--out',
                 str(fig)])
    assert fig.stat().st_size > 1000


@pytest.mark.slow
def test_detection_scale_tool_end_to_end(tmp_path):
    """det mode with an initialised digit-scenes Mask R-CNN on one generated image: the
    scale-1 predictions are their own ground truth (box mAP 1), the JSON/CSV/PNG are written."""
    images = tmp_path / 'images'
    images.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)).save(images / 'a.png')
    out = tmp_path / 'det'
    from mmengine.registry import DefaultScope
    before = DefaultScope.get_current_instance()
    scope = before.scope_name if before is not None else None
    cfg = osp.join(ROOT, 'configs/det/digit_scenes/u_dwconv_micro_maskrcnn_digits.py')
    _cli().main(['det', cfg, 'none', '--data', str(images), '--scales', '0.5,1', '--gt-score-thr', '0',
                 '--out-dir', str(out), '--no-progress'])
    res = json.loads((out / 'invariance_det.json').read_text())
    scale = res['models']['U-DWConv-micro']['scale']
    assert scale['magnitude'] == [0.5, 1.0]
    assert scale['num_gt'] > 0
    assert scale['bbox_mAP'][1] == pytest.approx(1.0)
    assert (out / 'invariance_det.png').stat().st_size > 1000
    after = DefaultScope.get_current_instance()
    assert (after.scope_name if after is not None else None) == scope  # no global change
