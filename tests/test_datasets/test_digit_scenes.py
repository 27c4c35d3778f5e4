"""The embedded digit-scenes data set: valid COCO json, masks = strokes, seeded, fast."""
import json
import os.path as osp
import runpy
import sys

import numpy as np
import pytest

from stm_mm.datasets.digit_scenes import CLASSES, generate_digit_scenes, read_info

from .. import ROOT


@pytest.fixture(scope='module')
def scenes(tmp_path_factory):
    out = tmp_path_factory.mktemp('digit_scenes')
    generate_digit_scenes(str(out), num_train=12, num_val=6)
    return out


def test_layout_and_coco_validity(scenes):
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO
    info = read_info(str(scenes))
    # 12 and 6 scenes, then round(0.3 * n) close-ups
    assert info['counts']['train']['images'] == 16 and info['counts']['val']['images'] == 8
    for split in ('train', 'val'):
        coco = COCO(str(scenes / 'annotations' / f'instances_{split}.json'))
        cats = coco.loadCats(coco.getCatIds())
        assert [c['name'] for c in cats] == list(CLASSES)
        assert len(coco.getAnnIds()) == info['counts'][split]['instances'] > 0
        for image in coco.loadImgs(coco.getImgIds()):
            assert osp.isfile(scenes / split / image['file_name'])
            # regular scenes, then the close-ups (one digit, twice the side)
            regular = image['id'] < info['settings'][f'num_{split}']
            assert (image['width'], image['height']) == ((128, 128) if regular else (256, 256))
            for ann in coco.loadAnns(coco.getAnnIds(imgIds=image['id'])):
                mask = mask_utils.decode(ann['segmentation'])
                ys, xs = np.nonzero(mask)
                assert ann['area'] == mask.sum() > 0
                assert ann['bbox'] == [xs.min(), ys.min(), xs.max() - xs.min() + 1,
                                       ys.max() - ys.min() + 1]
                assert ann['iscrowd'] == 0 and 1 <= ann['category_id'] <= 10
            masks = [mask_utils.decode(a['segmentation'])
                     for a in coco.loadAnns(coco.getAnnIds(imgIds=image['id']))]
            if masks:  # digits never overlap
                assert np.sum(masks, axis=0).max() == 1


def test_masks_are_the_ink(scenes):
    """Pixels under a mask are brighter than the background around the digit."""
    import cv2
    from pycocotools import mask as mask_utils
    coco = json.load(open(scenes / 'annotations' / 'instances_train.json'))
    luma = np.array([0.114, 0.587, 0.299])  # BGR
    for ann in coco['annotations'][:10]:
        image = cv2.imread(str(scenes / 'train' / f'{ann["image_id"]:06d}.png')).astype(float)
        mask = mask_utils.decode(ann['segmentation']).astype(bool)
        x, y, w, h = (int(v) for v in ann['bbox'])
        box = np.zeros_like(mask)
        box[y:y + h, x:x + w] = True
        ink = image[mask].mean(0)
        ring = image[box & ~mask].mean(0)
        assert ink @ luma > ring @ luma + 40


def test_seeded_and_cached(tmp_path, scenes):
    generate_digit_scenes(str(tmp_path), num_train=12, num_val=6)
    for split in ('train', 'val'):
        name = f'annotations/instances_{split}.json'
        assert (tmp_path / name).read_bytes() == (scenes / name).read_bytes()
    stamp = (tmp_path / 'digit_scenes_info.json').stat().st_mtime_ns
    generate_digit_scenes(str(tmp_path), num_train=12, num_val=6)  # same settings: no-op
    assert (tmp_path / 'digit_scenes_info.json').stat().st_mtime_ns == stamp
    generate_digit_scenes(str(tmp_path), num_train=12, num_val=6, seed=1)
    assert (tmp_path / 'annotations/instances_val.json').read_bytes() != \
        (scenes / 'annotations/instances_val.json').read_bytes()


def test_cli(tmp_path):
    tool = osp.join(ROOT, 'tools/dataset_converters/digit_scenes.py')
    old = sys.argv
    sys.argv = [tool, str(tmp_path / 'ds'), '--num-train', '3', '--num-val', '2', '--size',
                '96', '--digit-size', '16', '40']
    try:
        runpy.run_path(tool, run_name='__main__')
    finally:
        sys.argv = old
    info = read_info(str(tmp_path / 'ds'))
    assert info['settings']['image_size'] == 96 and info['settings']['digit_size'] == [16, 40]


def test_close_ups_cover_the_medium_and_large_buckets(tmp_path, scenes):
    """round(0.3 * n) close-ups follow the regular scenes, each one digit with a mask area in
    COCO's medium (32^2-96^2) or large (> 96^2) bucket; the regular scenes hold no large digit,
    and without close-ups they are the same files."""
    areas = {}
    for split, n in (('train', 12), ('val', 6)):
        coco = json.load(open(scenes / 'annotations' / f'instances_{split}.json'))
        close = [im['id'] for im in coco['images'] if im['width'] == 256]
        assert close == list(range(n, n + round(0.3 * n)))
        for image_id in close:
            anns = [a for a in coco['annotations'] if a['image_id'] == image_id]
            assert len(anns) == 1
            areas.setdefault('close', []).append(anns[0]['area'])
        areas.setdefault('regular', []).extend(
            a['area'] for a in coco['annotations'] if a['image_id'] < n)
    assert min(areas['close']) > 32 ** 2 and max(areas['close']) > 96 ** 2
    assert max(areas['regular']) < 96 ** 2
    coco = json.load(open(scenes / 'annotations' / 'instances_train.json'))
    generate_digit_scenes(str(tmp_path), num_train=12, num_val=6, close_up_fraction=0)
    plain = json.load(open(tmp_path / 'annotations' / 'instances_train.json'))
    assert len(plain['images']) == 12
    assert plain['annotations'] == [a for a in coco['annotations'] if a['image_id'] < 12]
    for i in range(12):
        name = f'train/{i:06d}.png'
        assert (tmp_path / name).read_bytes() == (scenes / name).read_bytes()


def test_bad_settings(tmp_path):
    with pytest.raises(ValueError, match='digit_size'):
        generate_digit_scenes(str(tmp_path), image_size=32, digit_size=(20, 52))
