"""The digits converter writes real scans as an image folder that mmpretrain reads."""
import json
import os.path as osp
import subprocess

import numpy as np
import pytest
from PIL import Image

from stm_mm.datasets import (DIGIT_CLASSES, digit_to_image, is_converted, load_digit_arrays,
                             split_indices, write_digits_imagefolder)

from .. import ROOT
from ..helpers.fork_python import python


def test_split_is_stratified_and_seeded():
    _, labels = load_digit_arrays()
    assert len(labels) == 1797
    train, val = split_indices(labels, 0.2, seed=0)
    assert len(train) + len(val) == 1797 and not set(train) & set(val)
    assert len(val) == 360
    train_share = np.bincount(labels[train], minlength=10) / np.bincount(labels, minlength=10)
    assert np.allclose(train_share, 0.8, atol=0.01)
    again, _ = split_indices(labels, 0.2, seed=0)
    other, _ = split_indices(labels, 0.2, seed=1)
    assert np.array_equal(train, again) and not np.array_equal(train, other)


def test_digit_image_keeps_the_scan():
    images, _ = load_digit_arrays()
    img = digit_to_image(images[0], size=8)
    assert img.mode == 'RGB' and img.size == (8, 8)
    grey = np.asarray(img)[..., 0].astype(np.float32)
    assert np.abs(grey - images[0] * 255 / 16).max() <= 0.5
    big = np.asarray(digit_to_image(images[0], size=32))
    assert big.shape == (32, 32, 3) and (big[..., 0] == big[..., 2]).all()


def test_custom_dataset_reads_the_converter_output(tmp_path):
    from mmengine.registry import init_default_scope
    from mmpretrain.datasets import CustomDataset
    init_default_scope('mmpretrain')
    root = str(tmp_path / 'digits')
    # the command-line face, as the demo runs it
    subprocess.run([python(), osp.join(ROOT, 'tools', 'dataset_converters',
                                             'digits_to_imagefolder.py'), root,
                    '--per-class-limit', '3', '--size', '24'], check=True, cwd=ROOT)
    assert is_converted(root, size=24)
    info = json.load(open(osp.join(root, 'digits_info.json')))
    assert info['counts'] == {'train': 30, 'val': 30}

    pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
    for split in ('train', 'val'):
        dataset = CustomDataset(data_root=root, data_prefix=split, pipeline=pipeline)
        assert len(dataset) == 30
        assert tuple(dataset.metainfo['classes']) == DIGIT_CLASSES
        labels = [dataset.get_data_info(i)['gt_label'] for i in range(len(dataset))]
        assert sorted(np.bincount(labels).tolist()) == [3] * 10
        sample = dataset[0]
        assert tuple(sample['inputs'].shape) == (3, 24, 24)
        # the folder name is the label, and it is the digit that was scanned
        path = dataset.get_data_info(0)['img_path']
        assert int(osp.basename(osp.dirname(path))) == int(sample['data_samples'].gt_label)
        # the ImageNet-style list file names the same images
        listed = open(osp.join(root, 'meta', f'{split}.txt')).read().split('\n')
        assert len([line for line in listed if line]) == 30
        by_list = CustomDataset(data_root=root, data_prefix=split, ann_file=f'meta/{split}.txt',
                                classes=list(DIGIT_CLASSES), pipeline=pipeline)
        assert sorted(d['img_path'] for d in by_list.load_data_list()) == \
            sorted(dataset.get_data_info(i)['img_path'] for i in range(len(dataset)))

    images, labels = load_digit_arrays()
    index = int(osp.splitext(osp.basename(path))[0])
    assert labels[index] == int(osp.basename(osp.dirname(path)))
    assert np.array_equal(np.asarray(Image.open(path)), np.asarray(digit_to_image(images[index],
                                                                                    24)))


def test_converter_skips_a_finished_conversion(tmp_path):
    root = str(tmp_path / 'd')
    info = write_digits_imagefolder(root, size=16, per_class_limit=1)
    stamp = osp.getmtime(osp.join(root, 'digits_info.json'))
    assert write_digits_imagefolder(root, size=16, per_class_limit=1) == info
    assert osp.getmtime(osp.join(root, 'digits_info.json')) == stamp
    # other settings rewrite
    info2 = write_digits_imagefolder(root, size=16, per_class_limit=2)
    assert info2['counts'] == {'train': 20, 'val': 20} and is_converted(root, size=16)
    info3 = write_digits_imagefolder(root, size=16, per_class_limit=1)  # fewer: no stale files
    assert info3 == info and is_converted(root, size=16)
    with pytest.raises(ValueError):
        split_indices(np.zeros(10), val_fraction=1.5)
