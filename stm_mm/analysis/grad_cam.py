"""Grad-CAM (Selvaraju et al., ICCV 2017) of a classifier at one channels-first layer.

The class score's gradient, averaged over the layer's positions, weighs its channels; the ReLU of
the weighted channel sum, upsampled to the input (bilinear) and min-max normalised, is the map. Target a
module whose output is ``(B, C, h, w)``: for stm_mm's backbone a module directly under it
(``backbone.stage_norms.I``, ``backbone.stages.I``, ...), never one inside a stage (its blocks work
channels-last). :func:`default_layer` picks the deepest stage norm whose map is at least 4x4.
"""
import re

import numpy as np
import torch
import torch.nn.functional as F

MIN_SIDE = 4  # a 1x1 or 2x2 map cannot say where; the deepest stage with a 4x4 map or larger


def default_layer(input_side, num_stages=4, min_side=MIN_SIDE):
    """Name of the deepest ``backbone.stage_norms.I`` whose map is ``>= min_side`` wide.

    Stage ``I`` of an ``S``-pixel input is ``ceil(S / 2^(I+2))`` wide (stride-4 stem, stride-2
    transitions): at 32 px stage 1 (4x4), at 224 px stage 3 (7x7).
    """
    index = 0
    for i in range(num_stages):
        if -(-input_side // 2 ** (i + 2)) >= min_side:
            index = i
    return f'backbone.stage_norms.{index}'


def grad_cam(model, inputs, layer, targets=None):
    """Grad-CAM of ``model`` (logits from ``model(inputs, mode='tensor')``) at ``layer``.

    Args:
        model: an mmpretrain ``ImageClassifier`` (or any module with that forward).
        inputs: preprocessed images ``(B, 3, H, W)``.
        layer: name of the target module; its output must be ``(B, C, h, w)``.
        targets: class index per image ``(B,)``; default the top-1 class.

    Returns:
        ``(cams, logits)``: ``cams`` ``(B, H, W)`` in ``[0, 1]`` (float64 numpy), ``logits``
        ``(B, K)`` (detached).
    """
    if re.search(r'(^|\.)stages\.\d+\.', layer):
        raise ValueError(f'Grad-CAM layer {layer} is inside a stage, whose blocks work '
                         'channels-last (B, H, W, C); fix: target a module directly under the '
                         'backbone, e.g. backbone.stage_norms.3 or backbone.stages.3')
    module = model.get_submodule(layer)
    store = {}

    def keep(_module, _inputs, output):
        if not (torch.is_tensor(output) and output.dim() == 4):
            raise ValueError(f'Grad-CAM layer {layer} outputs {_shape(output)}, not (B, C, h, w); '
                             'fix: target a module directly under the backbone, e.g. '
                             'backbone.stage_norms.3')
        output.register_hook(lambda grad: store.__setitem__('grad', grad))
        store['act'] = output

    handle = module.register_forward_hook(keep)
    try:
        with torch.enable_grad():
            inputs = inputs.detach().requires_grad_(True)  # gradients flow even if all frozen
            logits = model(inputs, mode='tensor')
            if targets is None:
                targets = logits.argmax(1)
            targets = torch.as_tensor(targets, device=logits.device).view(-1, 1)
            logits.gather(1, targets).sum().backward()
    finally:
        handle.remove()
    act, grad = store['act'].detach(), store['grad']
    cam = torch.relu((grad.mean((2, 3), keepdim=True) * act).sum(1, keepdim=True))
    cam = F.interpolate(cam.double(), size=inputs.shape[-2:], mode='bilinear',
                        align_corners=False)
    low = cam.amin((2, 3), keepdim=True)
    cam = (cam - low) / (cam.amax((2, 3), keepdim=True) - low + 1e-7)
    return cam[:, 0].cpu().numpy(), logits.detach()


def _shape(output):
    return tuple(output.shape) if torch.is_tensor(output) else type(output).__name__


def overlay(image, cam, alpha=0.5):
    """``image`` ``(H, W, 3)`` uint8 RGB with ``cam`` ``(H, W)`` in jet colours over it."""
    from matplotlib import colormaps

    heat = colormaps['jet'](cam)[..., :3]
    return np.clip((1 - alpha) * image / 255.0 + alpha * heat, 0, 1)


def plot_grad_cam_grid(rows, columns, path, dpi=100):
    """One row per model, one column per image: the image with its Grad-CAM over it.

    Args:
        rows: ``[(label, [(overlay (H, W, 3) floats in [0, 1], caption), ...]), ...]``.
        columns: the column titles (image name, size and layer).
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), len(columns), squeeze=False,
                             figsize=(1.9 * len(columns), 2.0 * len(rows)))
    for r, (label, cells) in enumerate(rows):
        for c, (picture, caption) in enumerate(cells):
            ax = axes[r][c]
            ax.imshow(picture, interpolation='nearest')
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel(caption, fontsize=7)
            if r == 0:
                ax.set_title(columns[c], fontsize=7)
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi, bbox_inches='tight')
    plt.close(fig)
    return path
