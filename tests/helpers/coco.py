"""A tiny valid COCO instance-segmentation set (64x64 PNGs, polygon and RLE masks)."""
import copy
import json
import os
import os.path as osp

import numpy as np

CLASSES = tuple(str(i) for i in range(10))
SIZE = 64


def make_coco(root, num_images=4, seed=0):
    """Writes ``root/img/*.png`` and returns the COCO dict (not written)."""
    from PIL import Image
    from pycocotools import mask as mask_utils
    rng = np.random.default_rng(seed)
    os.makedirs(osp.join(root, 'img'), exist_ok=True)
    images, anns = [], []
    for i in range(num_images):
        name = f'{i:03d}.png'
        img = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
        Image.fromarray(img).save(osp.join(root, 'img', name))
        images.append(dict(id=i + 1, file_name=name, width=SIZE, height=SIZE))
        # a square with a polygon
        x, y = int(rng.integers(2, 20)), int(rng.integers(2, 20))
        anns.append(dict(id=len(anns) + 1, image_id=i + 1, category_id=int(rng.integers(1, 11)),
                         bbox=[x, y, 16, 16], area=256, iscrowd=0,
                         segmentation=[[x, y, x + 16, y, x + 16, y + 16, x, y + 16]]))
        # a blob with an RLE mask
        m = np.zeros((SIZE, SIZE), np.uint8, order='F')
        m[40:56, 36:60] = 1
        rle = mask_utils.encode(np.asfortranarray(m))
        rle['counts'] = rle['counts'].decode()
        anns.append(dict(id=len(anns) + 1, image_id=i + 1, category_id=int(rng.integers(1, 11)),
                         bbox=[36, 40, 24, 16], area=384, iscrowd=0, segmentation=rle))
    cats = [dict(id=k + 1, name=name) for k, name in enumerate(CLASSES)]
    return dict(images=images, annotations=anns, categories=cats)


def write(data, path):
    with open(path, 'w') as f:
        json.dump(data, f)
    return path


def corrupt(data, fn):
    data = copy.deepcopy(data)
    fn(data)
    return data
