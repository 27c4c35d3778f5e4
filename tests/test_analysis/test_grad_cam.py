"""stm_mm's Grad-CAM (``stm_mm.analysis.grad_cam``) against pytorch-grad-cam, and its figure tool."""
import json
import os.path as osp
import runpy

import numpy as np
import pytest
import torch
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS
from PIL import Image
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch.testing import assert_close

import stm_mm  # noqa: F401  (registers UnifiedBackbone)
from stm_mm.analysis.grad_cam import default_layer, grad_cam

from .. import ROOT

ARCH = dict(base='micro', depths=(1, 1, 1, 1))


def tiny_classifier(stm):
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(dict(
            type='ImageClassifier',
            backbone=dict(type='UnifiedBackbone', stm=stm, arch=ARCH, img_size=32),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=10, in_channels=256))).eval()


class Logits(torch.nn.Module):
    """pytorch-grad-cam calls ``model(x)`` for the logits."""

    def __init__(self, classifier):
        super().__init__()
        self.classifier = classifier

    def forward(self, x):
        return self.classifier(x, mode='tensor')


def test_default_layer_is_the_deepest_stage_with_a_4x4_map():
    assert default_layer(32) == 'backbone.stage_norms.1'  # 8, 4, 2, 1
    assert default_layer(224) == 'backbone.stage_norms.3'  # 56, 28, 14, 7
    assert default_layer(96) == 'backbone.stage_norms.2'  # 24, 12, 6, 3
    assert default_layer(97) == 'backbone.stage_norms.3'  # ceil: 25, 13, 7, 4
    assert default_layer(8) == 'backbone.stage_norms.0'  # never below stage 0


@pytest.mark.parametrize('stm', ['pvt', 'dcnv3'])
def test_grad_cam_equals_pytorch_grad_cam(stm):
    """The same map as pytorch-grad-cam's GradCAM (float64 model, its float32 output), for the
    top-1 class and for a chosen class, at a 4x4 stage of a 32 px input."""
    torch.manual_seed(0)
    model = tiny_classifier(stm).double()
    inputs = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    layer = 'backbone.stage_norms.1'
    for targets in (None, [3, 7]):
        ours, logits = grad_cam(model, inputs, layer, targets)
        classes = logits.argmax(1).tolist() if targets is None else targets
        cam = GradCAM(Logits(model), [model.get_submodule(layer)])
        theirs = cam(inputs, targets=[ClassifierOutputTarget(k) for k in classes])
        cam.activations_and_grads.release()
        assert ours.shape == (2, 32, 32) and ours.max() > 0.99 and ours.min() >= 0
        assert_close(torch.from_numpy(ours).float(), torch.from_numpy(theirs),
                     rtol=1e-4, atol=1e-4)


def test_grad_cam_refuses_a_channels_last_layer():
    model = tiny_classifier('dwconv')
    with pytest.raises(ValueError, match=r'outputs tuple, not \(B, C, h, w\)'):
        grad_cam(model, torch.randn(1, 3, 32, 32), 'neck')
    with pytest.raises(ValueError, match=r'inside a stage.*fix: .*stage_norms'):
        grad_cam(model, torch.randn(1, 3, 32, 32), 'backbone.stages.0.blocks.0.norm1')


def test_grad_cam_tool_writes_the_figure_and_records(tmp_path):
    image = tmp_path / 'digit.png'
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 48, 3), np.uint8)).save(image)
    config = osp.join(ROOT, 'configs/cls/digits/u_dwconv_micro_digits.py')
    tool = runpy.run_path(osp.join(ROOT, 'tools/analysis_tools/grad_cam.py'), run_name='grad_cam')
    out, records = tmp_path / 'cam.png', tmp_path / 'cam.json'
    assert tool['main']([
        '--models', f'{config}:none:A', f'{config}:none:B', '--images', str(image),
        f'{image}@64', '--out', str(out), '--json', str(records), '--device', 'cpu']) == 0
    assert Image.open(out).size[0] > 200
    rows = json.loads(records.read_text())
    assert [(r['model'], r['size'], r['layer']) for r in rows] == [
        ('A', 32, 'backbone.stage_norms.1'), ('A', 64, 'backbone.stage_norms.2'),
        ('B', 32, 'backbone.stage_norms.1'), ('B', 64, 'backbone.stage_norms.2')]
    assert all(0 <= r['top1'] < 10 and 0.1 <= r['probability'] <= 1 for r in rows)
