"""tools/demo/image_demo.py and det_image_demo.py on a real photograph shipped with scikit-learn
(china.jpg) and on a digit scene, with digits models of random weights saved in the layouts the
demos must read (an MMEngine checkpoint; the authors' mmdet 2.x detector, converted on load).

The printed top-k equals the scores of the in-memory model; the pictures have the expected size
and differ from the image where the predictions are drawn and only there (classification)."""
import importlib.util
import os
import os.path as osp
import re
import subprocess

import mmcv
import numpy as np
import pytest
import torch
from mmengine.config import Config

from .. import ROOT
from ..helpers.fork_python import python

DEMO_DIR = osp.join(ROOT, 'tools', 'demo')
CLS_CONFIG = osp.join(ROOT, 'configs/cls/digits/u_dwconv_micro_digits.py')
DET_CONFIG = osp.join(ROOT, 'configs/det/digit_scenes/u_dwconv_micro_maskrcnn_digits.py')
DIGITS = tuple('0123456789')


def _tool(name, monkeypatch):
    monkeypatch.syspath_prepend(DEMO_DIR)  # det_image_demo imports image_demo, as a script does
    spec = importlib.util.spec_from_file_location(name, osp.join(DEMO_DIR, f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def images(tmp_path_factory):
    from PIL import Image
    from sklearn.datasets import load_sample_image

    from stm_mm.datasets.digit_scenes import generate_digit_scenes
    folder = tmp_path_factory.mktemp('images')
    china = str(folder / 'china.jpg')
    Image.fromarray(load_sample_image('china.jpg')).save(china)
    generate_digit_scenes(str(folder / 'scenes'), num_train=1, num_val=1)
    return dict(china=china, scene=str(folder / 'scenes' / 'val' / '000000.png'))


@pytest.fixture(scope='module')
def classifier(tmp_path_factory):
    """(model, MMEngine checkpoint path) of the digits U-DWConv-micro, random weights."""
    import mmpretrain
    torch.manual_seed(0)
    model = mmpretrain.get_model(CLS_CONFIG)
    path = str(tmp_path_factory.mktemp('cls') / 'cls.pth')
    torch.save({'state_dict': model.state_dict(),
                'meta': {'dataset_meta': {'classes': DIGITS}}}, path)
    return model, path


@pytest.mark.parametrize('which', ['china', 'scene'])
def test_image_demo_prints_topk_and_draws_it(which, images, classifier, tmp_path, capsys,
                                             monkeypatch):
    from mmpretrain import ImageClassificationInferencer
    model, checkpoint = classifier
    out = str(tmp_path / 'vis.png')
    demo = _tool('image_demo', monkeypatch)
    assert demo.main([images[which], CLS_CONFIG, checkpoint, '--topk', '3', '--out', out]) == 0
    printed = re.findall(r'^\s+(\d)\. (\d\.\d{4})\s+(\d+) (\S+)$', capsys.readouterr().out,
                         re.M)
    scores = ImageClassificationInferencer(model)(images[which])[0]['pred_scores']
    top = np.argsort(-scores)[:3]
    assert printed == [(str(r + 1), f'{scores[i]:.4f}', str(i), DIGITS[i])
                       for r, i in enumerate(top)]

    image = mmcv.imread(images[which], channel_order='rgb')
    if min(image.shape[:2]) < 256:  # small images are drawn with their short side at 256
        image = mmcv.imresize(image, (256, 256))
    drawn = mmcv.imread(out, channel_order='rgb').astype(float)
    assert drawn.shape == image.shape
    diff = np.abs(drawn - image).mean(axis=2)
    h, w = diff.shape
    assert diff[:h // 8, :w // 4].mean() > 20  # the label box in the top-left corner
    assert diff[h // 2:, w // 2:].mean() < 1  # the rest is the image


def test_image_demo_reports_a_missing_image(capsys, monkeypatch):
    demo = _tool('image_demo', monkeypatch)
    with pytest.raises(SystemExit) as info:
        demo.main(['missing.jpg', CLS_CONFIG])
    assert info.value.code == 2
    assert capsys.readouterr().err.splitlines()[0] == (
        'error: image missing.jpg not found; fix: pass an existing image file')


@pytest.fixture(scope='module')
def authors_detector(tmp_path_factory):
    """The digits Mask R-CNN (U-DWConv-micro, random weights) saved as the authors' mmdet 2.x
    checkpoint: ``backbone.`` keys in their names, ``meta['CLASSES']``."""
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    from tests.helpers.detectors import stm_mm_to_mmdet2
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(DET_CONFIG)
    cfg.model.backbone.init_cfg = None
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    path = str(tmp_path_factory.mktemp('det') / 'mask_rcnn_unified_convnext_micro_1x.pth')
    torch.save({'state_dict': stm_mm_to_mmdet2(model.state_dict(), 'dwconv'),
                'meta': {'CLASSES': DIGITS}}, path)
    return path


@pytest.mark.parametrize('which,scale', [('china', 1), ('scene', 3)])
def test_det_image_demo_prints_and_draws_detections(which, scale, images, authors_detector,
                                                    tmp_path, capsys, monkeypatch):
    out = str(tmp_path / 'vis.png')
    demo = _tool('det_image_demo', monkeypatch)
    assert demo.main([images[which], DET_CONFIG, authors_detector, '--out', out,
                      '--score-thr', '0.05', '--scale', str(scale)]) == 0
    stdout = capsys.readouterr().out
    count = int(re.search(r': (\d+) detections with score >= 0.05', stdout).group(1))
    rows = re.findall(r'^(\d\.\d{3})  (\S+)\s+box \[([^\]]+)\]  mask (\d+) px$', stdout, re.M)
    assert len(rows) == count > 0  # random heads score every class near 1/11
    scores = [float(r[0]) for r in rows]
    assert scores == sorted(scores, reverse=True) and min(scores) >= 0.05
    image = mmcv.imread(images[which], channel_order='rgb')
    h, w = image.shape[:2]
    for _, label, box, _ in rows:
        x1, y1, x2, y2 = (float(v) for v in box.split(', '))
        assert label in DIGITS and 0 <= x1 <= x2 <= w and 0 <= y1 <= y2 <= h
    drawn = mmcv.imread(out, channel_order='rgb').astype(float)
    assert drawn.shape == (scale * h, scale * w, 3)
    assert np.abs(drawn - mmcv.imrescale(image, scale)).mean() > 1  # boxes and masks are drawn


def test_det_image_demo_script_reports_a_missing_checkpoint(images):
    """Run as a script (its own folder on sys.path, as from the shell): one error line."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    result = subprocess.run(
        [python(), osp.join(DEMO_DIR, 'det_image_demo.py'), images['scene'], DET_CONFIG,
         'missing.pth', '--out', 'vis.png'], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        'error: checkpoint missing.pth not found; fix: pass an existing checkpoint file',
        '(run with --debug for the full traceback)']


def test_image_demo_feeds_a_model_only_config_the_imagenet_pipeline(tmp_path, capsys,
                                                                     monkeypatch):
    """A config without a test pipeline: resize to 256, centre crop 224, ImageNet mean/std."""
    from PIL import Image

    from stm_mm.apis import init_model
    config = tmp_path / 'tiny_model.py'
    config.write_text(
        "custom_imports = dict(imports=['stm_mm'])\n"
        "model = dict(type='ImageClassifier', backbone=dict(type='UnifiedBackbone', "
        "stm='dwconv', arch=dict(depths=(1, 1, 1, 1), dims=(8, 16, 32, 64))), "
        "neck=dict(type='GlobalAveragePooling'), "
        "head=dict(type='LinearClsHead', num_classes=10, in_channels=64))\n")
    model = init_model(str(config), seed=1)
    checkpoint = str(tmp_path / 'tiny.pth')
    torch.save({'state_dict': model.state_dict()}, checkpoint)
    pixels = np.random.default_rng(0).integers(0, 256, (300, 300, 3), dtype=np.uint8)
    image = str(tmp_path / 'square.png')
    Image.fromarray(pixels).save(image)

    demo = _tool('image_demo', monkeypatch)
    assert demo.main([image, str(config), checkpoint, '--topk', '3', '--device', 'cpu']) == 0
    out = capsys.readouterr().out
    assert f'note: {config} has no test pipeline; using the ImageNet one' in out
    printed = re.findall(r'^\s+\d\. (\d\.\d{4})\s+(\d+) ', out, re.M)
    view = np.asarray(Image.fromarray(pixels).resize((256, 256), Image.BICUBIC))[16:240, 16:240]
    x = (torch.from_numpy(view).double() - torch.tensor([123.675, 116.28, 103.53]).double()) / \
        torch.tensor([58.395, 57.12, 57.375]).double()
    with torch.no_grad():
        scores = model.double()(x.permute(2, 0, 1)[None], mode='tensor').softmax(-1)[0]
    top = scores.sort(descending=True)
    assert [int(i) for _, i in printed] == top.indices[:3].tolist()
    torch.testing.assert_close(torch.tensor([float(s) for s, _ in printed], dtype=torch.float64),
                               top.values[:3], rtol=0, atol=5e-5 + 1e-6)  # printed to 4 places
