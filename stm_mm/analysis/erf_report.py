"""The ERF of whole models, end to end: load them, compute every stage's map, save and plot
(``tools/analysis_tools/erf.py``; the maths in :mod:`.erf`)."""
import json
import os
import os.path as osp

import numpy as np

from .erf import erf_images, model_erf, stage_indices, summarise
from .loaded_model import load_model, unique_label
from .plotting import plot_erf_grid, plot_erf_map


def run_erf(models, out_dir, data='digits', num_images=8, input_size=224, batch_size=4,
            device='cpu', relu=True, progress=True, floor=1e-3, log=print):
    """Compute, save and plot the ERF of one or more models.

    Args:
        models: ``[(config, checkpoint or 'none', label or None), ...]``; the first is the
            primary model.
        out_dir: writes ``erf.json`` (``{"0": ERF@50, ..., "3": ...}`` of the primary model),
            ``erf_stage{i}.png`` (its heat maps), ``erf_details.json`` (ERF@20/30/50/99 of raw
            and log maps, settings, every model), ``erf_maps.npz`` and, with several models,
            ``erf_compare.png`` + ``erf_compare.json`` (``{label: {stage: ERF@50}}``).
        data: image folder, ``'digits'`` or ``'noise'`` (see :func:`erf_images`).
    Returns:
        the details dict.
    """
    os.makedirs(out_dir, exist_ok=True)
    taken = set()
    rows, details, arrays = [], dict(settings=dict(
        data=data, num_images=num_images, input_size=input_size, relu_response=relu,
        definition=('|d(sum_c ' + ('relu(y[c, H_i//2, W_i//2])' if relu else 'y[c, H_i//2, W_i//2]')
                    + ') / dx| summed over input channels, averaged over images; ERF@p = side '
                    'of the smallest centred square holding p of the total / input side')),
        models={}), {}
    images_by_channels = {}
    for k, (config, checkpoint, label) in enumerate(models):
        loaded = load_model(config, checkpoint, device=device, all_stages=True, label=label)
        label = unique_label(loaded.label, taken)
        channels = loaded.in_channels
        if channels not in images_by_channels:
            images_by_channels[channels] = erf_images(data, num_images, input_size, channels)
        log(f'[erf] {label}: {config} ({loaded.checkpoint or "initialised weights"}), '
            f'{len(images_by_channels[channels])} images at {input_size}x{input_size}')
        maps, count = model_erf(loaded, images_by_channels[channels], batch_size, relu,
                                progress)
        indices = stage_indices(loaded, len(maps))
        summary = summarise(maps, indices)
        ratios = {s: v['erf@50'] for s, v in summary.items()}
        details['models'][label] = dict(config=config, checkpoint=loaded.checkpoint,
                                        num_images=count, stages=summary)
        rows.append((label, maps, indices, ratios))
        for s, m in zip(indices, maps):
            arrays[f'{label}/stage{s}'] = m
        log('[erf] ' + '  '.join(f'stage {int(s) + 1}: ERF@50={v:.3f}'
                                 for s, v in ratios.items()))
        if k == 0:
            with open(osp.join(out_dir, 'erf.json'), 'w') as f:
                json.dump(ratios, f, indent=2)
            for s, m in zip(indices, maps):
                plot_erf_map(m, osp.join(out_dir, f'erf_stage{s}.png'),
                             f'{label} stage {s + 1}  ERF@50={ratios[str(s)]:.2f}', floor)
        del loaded
    if len(rows) > 1:
        plot_erf_grid(rows, osp.join(out_dir, 'erf_compare.png'), floor)
        with open(osp.join(out_dir, 'erf_compare.json'), 'w') as f:
            json.dump({r[0]: r[3] for r in rows}, f, indent=2)
    with open(osp.join(out_dir, 'erf_details.json'), 'w') as f:
        json.dump(details, f, indent=2)
    np.savez_compressed(osp.join(out_dir, 'erf_maps.npz'), **arrays)
    return details
