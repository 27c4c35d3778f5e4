"""Grad-CAM with mmpretrain's own ``tools/visualization/vis_cam.py`` is right by default (#27).

vis_cam reads every hooked activation as ``(B, C, H, W)`` and, without ``--target-layers``, hooks
the backbone's last norm layer (``backbone.stage_norms.3`` here). The backbone's blocks work
channels-last, so the modules directly under it must hand out channels-first maps.
"""
import itertools
import runpy
from argparse import Namespace
from functools import partial
from pathlib import Path

import mmpretrain
import pytest
import torch
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS
from torch.testing import assert_close

import stm_mm  # noqa: F401  (registers UnifiedBackbone)
from stm_mm.models import UnifiedBackbone

VIS_CAM = Path(mmpretrain.__file__).parent / '.mim' / 'tools' / 'visualization' / 'vis_cam.py'
STMS = ('halo', 'pvt', 'swin', 'dwconv', 'dcnv3')
ARCH = dict(base='micro', depths=(1, 1, 1, 1))  # stage 3: 256 channels


@pytest.fixture(scope='module')
def vis_cam():
    """vis_cam.py's functions (its ``main`` is not run)."""
    return runpy.run_path(str(VIS_CAM), run_name='vis_cam')


@pytest.mark.parametrize('stm', STMS)
def test_vis_cam_default_layer_points_at_the_quadrant_the_logit_looks_for(vis_cam, stm):
    """A 64x64 image gives a 2x2 stage-3 map: one cell per image quadrant. The classifier (global
    average pooling, one linear logit) has as weight the feature of one cell, so the logit asks
    "how much of this quadrant is in the image". Grad-CAM of a linear head on average pooling is
    known in closed form: ``ReLU(<w, A[:, h, w]>)`` per cell, min-max normalised; with LayerNorm
    features of equal norm it peaks at the chosen quadrant. vis_cam's upsampling replicates each
    cell into the 16x16 corner of its quadrant, so the corners must equal that map."""
    with DefaultScope.overwrite_default_scope('mmpretrain'):  # whatever an earlier test left
        model = MODELS.build(dict(
            type='ImageClassifier',
            backbone=dict(type='UnifiedBackbone', stm=stm, arch=ARCH, img_size=64),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=1, in_channels=256))).eval()
    args = Namespace(vit_like=False, num_extra_tokens=None)
    layers = vis_cam['get_default_target_layers'](model, args)
    assert layers == [model.backbone.stage_norms[3]]
    image = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        feats = model.backbone(image)[-1][0].double()  # (C, 2, 2), the documented layout
    for row, col in itertools.product((0, 1), (0, 1)):
        with torch.no_grad():
            model.head.fc.weight.copy_(feats[:, row, col])
            model.head.fc.bias.zero_()
        cam = vis_cam['init_cam']('GradCAM', model, layers, False,
                                  partial(vis_cam['reshape_transform'], model=model, args=args))
        heat = torch.from_numpy(cam(image, None)[0]).double()  # (64, 64) in [0, 1]
        cam.activations_and_grads.release()
        expected = torch.relu(torch.einsum('c,chw->hw', feats[:, row, col], feats))
        expected = expected - expected.min()
        expected = expected / (1e-7 + expected.max())
        assert expected[row, col] == expected.max() and expected.min() < 0.9
        assert_close(heat[[0, 0, -1, -1], [0, -1, 0, -1]].view(2, 2), expected,
                     rtol=1e-4, atol=1e-4)


def test_modules_under_the_backbone_output_channels_first():
    """Every module directly under the backbone (what a hook or ``--target-layers`` picks) gives
    ``(B, C_i, H_i, W_i)``; the stage norm's output is the returned feature map."""
    model = UnifiedBackbone('dwconv', ARCH, out_indices=(0, 1, 2, 3)).eval()
    seen = {}
    for name, module in model.named_children():
        for index, child in enumerate(module if isinstance(module, torch.nn.ModuleList)
                                      else [module]):
            child.register_forward_hook(
                lambda m, i, out, key=f'{name}.{index}': seen.__setitem__(key, out))
    outs = model(torch.randn(2, 3, 64, 96))
    sides = [(16, 24), (8, 12), (4, 6), (2, 3)]
    assert seen['stem.0'].shape == (2, 32, *sides[0])
    for i, dim in enumerate(model.dims):
        assert seen[f'stages.{i}'].shape == (2, dim, *sides[i])
        assert_close(seen[f'stage_norms.{i}'], outs[i])
        if i > 0:
            assert seen[f'transitions.{i - 1}'].shape == (2, dim, *sides[i])
