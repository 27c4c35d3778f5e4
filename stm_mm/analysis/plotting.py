"""Figures of the analyses (matplotlib, Agg backend): ERF heat maps (paper Fig. 6 style: log
scale, max-normalised) and invariance curves (paper Fig. 7 layout: one panel per transform, one
curve per model)."""
import os
import os.path as osp

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from .erf import erf_side  # noqa: E402

ERF_CMAP = 'RdYlGn'
TRANSFORM_TITLES = dict(translation='Translation', rotation='Rotation', scale='Scale (detection)')
TRANSFORM_XLABELS = dict(translation='shift (pixels)', rotation='angle (degrees)',
                         scale='scale factor')
METRIC_LABELS = dict(consistency='consistency (%)', accuracy='top-1 accuracy (%)',
                     bbox_mAP='box mAP (%)', bbox_mAP_50='box AP50 (%)')
TRANSFORM_METRIC = dict(translation='consistency', rotation='consistency', scale='bbox_mAP')


def _save(fig, path, dpi):
    d = osp.dirname(path)
    if d:
        os.makedirs(d, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches='tight')
    plt.close(fig)
    return path


def _draw_erf(ax, erf_map, floor, square_fraction=0.5):
    erf_map = np.asarray(erf_map, dtype=np.float64)
    peak = erf_map.max()
    shown = np.maximum(erf_map / peak if peak > 0 else np.full_like(erf_map, floor), floor)
    im = ax.imshow(shown, cmap=ERF_CMAP, norm=LogNorm(vmin=floor, vmax=1.0),
                   interpolation='nearest')
    if square_fraction and peak > 0:
        h, w = erf_map.shape
        side = erf_side(erf_map, square_fraction)
        r = (side - 1) / 2
        ax.add_patch(Rectangle((w // 2 - r - 0.5, h // 2 - r - 0.5), side, side, fill=False,
                               edgecolor='black', linewidth=0.8, linestyle='--'))
    ax.set_xticks([])
    ax.set_yticks([])
    return im


def plot_erf_map(erf_map, path, title=None, floor=1e-3, dpi=100):
    """One stage's ERF as a log-scale heat map (max = 1), the ERF@50 square dashed."""
    fig, ax = plt.subplots(figsize=(3.4, 3.0))
    im = _draw_erf(ax, erf_map, floor)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, path, dpi)


def plot_erf_grid(rows, path, floor=1e-3, dpi=100):
    """Several models side by side: ``rows`` = ``[(label, maps, stage_indices, ratios), ...]``
    with ``ratios`` ``{stage: ERF@50}``; one row per model, one column per stage."""
    if not rows:
        raise ValueError('plot_erf_grid needs at least one model')
    ncols = max(len(r[1]) for r in rows)
    fig, axes = plt.subplots(len(rows), ncols, figsize=(2.1 * ncols + 0.6, 2.0 * len(rows)),
                             squeeze=False)
    im = None
    for r, (label, maps, indices, ratios) in enumerate(rows):
        for c in range(ncols):
            ax = axes[r][c]
            if c >= len(maps):
                ax.axis('off')
                continue
            im = _draw_erf(ax, maps[c], floor)
            stage = indices[c]
            ratio = ratios.get(str(stage)) if ratios else None
            title = f'stage {stage + 1}' + (f'  ERF@50={ratio:.2f}' if ratio is not None else '')
            if r == 0 or ratios:
                ax.set_title(title, fontsize=8)
            if c == 0:
                ax.set_ylabel(label.replace(' (', '\n('), fontsize=9)
    fig.colorbar(im, ax=axes.ravel().tolist(), fraction=0.02, pad=0.02,
                 label='gradient / max (log)')
    return _save(fig, path, dpi)


def plot_invariance(models, path, transforms=None, accuracy=False, dpi=100, title=None):
    """Invariance curves: one panel per transform, one curve per model.

    Args:
        models: ``{label: {transform: {'magnitude': [...], metric: [...], ...}}}`` (the
            ``models`` part of the JSON written by :mod:`stm_mm.analysis.invariance`; several
            JSON files can be merged model by model).
        transforms: panels in order; default those present among translation, rotation, scale.
        accuracy: add a second row with the accuracy of the classification transforms.
    """
    present = [t for t in TRANSFORM_METRIC if any(t in m for m in models.values())]
    transforms = [t for t in (transforms or present) if t in present]
    if not transforms:
        raise ValueError('no translation/rotation/scale results to plot')
    acc_row = accuracy and any(
        m.get(t, {}).get('accuracy') is not None for m in models.values() for t in transforms
        if t != 'scale')
    nrows = 2 if acc_row else 1
    fig, axes = plt.subplots(nrows, len(transforms), figsize=(4.0 * len(transforms),
                                                              3.2 * nrows), squeeze=False)
    markers = 'osD^v<>px*h'
    for c, t in enumerate(transforms):
        metrics = [TRANSFORM_METRIC[t]] + (['accuracy'] if acc_row else [])
        for r, metric in enumerate(metrics):
            ax = axes[r][c]
            if t == 'scale' and metric == 'accuracy':
                ax.axis('off')
                continue
            for k, (label, res) in enumerate(models.items()):
                if t not in res or res[t].get(metric) is None:
                    continue
                x = res[t]['magnitude']
                y = [np.nan if v is None else 100.0 * v for v in res[t][metric]]
                ax.plot(x, y, marker=markers[k % len(markers)], markersize=3.5, linewidth=1.3,
                        label=label)
            ax.set_xlabel(TRANSFORM_XLABELS[t])
            ax.set_ylabel(METRIC_LABELS[metric])
            if r == 0:
                ax.set_title(TRANSFORM_TITLES[t])
            ax.grid(True, alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    for ax in axes[0][1:]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    ncol = min(len(labels), 5 if len(transforms) > 2 else 3)
    rows = -(-len(labels) // ncol) if labels else 0
    legend_h = 0.25 * rows / (3.2 * nrows)  # inches of legend -> figure fraction
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, legend_h + 0.02, 1, 1))
    if handles:
        fig.legend(handles, labels, loc='lower center', ncol=ncol, bbox_to_anchor=(0.5, 0.0),
                   frameon=False)
    return _save(fig, path, dpi)


def _signed(v):
    return 'n/a' if v is None else f'{v:+.2f}'


def plot_erf_vs_ap(rows, corr, stage, path, title=None, dpi=100):
    """Paper Fig. 5: AP of small / medium / large objects (one panel each) against ERF@50 of
    ``stage``, every model a labelled point; a second row for mask AP when present.

    Args:
        rows: the joined rows of :func:`stm_mm.analysis.erf_vs_ap.join`.
        corr: :func:`stm_mm.analysis.erf_vs_ap.correlations` of these rows (panel titles).
    """
    tasks = [t for t in ('bbox', 'segm')
             if any(r.get(f'{t}_mAP_{s}') is not None for r in rows for s in 'sml')]
    if not tasks:
        raise ValueError('no AP by object size to plot')
    fig, axes = plt.subplots(len(tasks), 3, figsize=(12.0, 3.6 * len(tasks)), squeeze=False)
    names = dict(s='small', m='medium', l='large')
    markers = 'osD^v<>px*h'
    for r, task in enumerate(tasks):
        for c, size in enumerate('sml'):
            ax = axes[r][c]
            key = f'{task}_mAP_{size}'
            for k, row in enumerate(rows):
                if row.get(key) is None or stage not in row['erf']:
                    continue
                x, y = row['erf'][stage], 100.0 * row[key]
                ax.plot(x, y, marker=markers[k % len(markers)], linestyle='none', markersize=6,
                        label=row['label'])
                ax.annotate(row['label'], (x, y), textcoords='offset points', xytext=(4, 4),
                            fontsize=7)
            what = 'box' if task == 'bbox' else 'mask'
            c_ = corr.get(key)
            if c_ is None:
                ax.text(0.5, 0.5, f'no {names[size]} objects', ha='center', va='center',
                        transform=ax.transAxes)
                ax.set_xticks([])
                ax.set_yticks([])
                stats = ''
            else:
                stats = (f'\nr={_signed(c_["pearson"])}  rho={_signed(c_["spearman"])}  '
                         f'n={c_["n"]}')
            ax.set_title(f'{names[size]} objects{stats}', fontsize=9)
            ax.set_xlabel(f'ERF@50, stage {int(stage) + 1}')
            ax.set_ylabel(f'{what} AP$_{size.upper()}$ (%)')
            ax.grid(True, alpha=0.3)
            ax.margins(0.15)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path, dpi)


def plot_training_invariance(curves, path, dpi=100, title=None):
    """Invariance over training (paper Fig. 7c): one row per run, one panel per transform, the
    mean consistency (classification) or mean box mAP (detection scale) per checkpoint.

    Args:
        curves: ``{label: {'step': [...], 'step_name': 'epoch', 'mean': {transform: [...]}}}``.
    """
    if not curves:
        raise ValueError('plot_training_invariance needs at least one run')
    transforms = [t for t in TRANSFORM_METRIC if any(t in c['mean'] for c in curves.values())]
    fig, axes = plt.subplots(len(curves), len(transforms),
                             figsize=(3.6 * len(transforms), 2.6 * len(curves)), squeeze=False,
                             sharey=True)
    for r, (label, c) in enumerate(curves.items()):
        for k, t in enumerate(transforms):
            ax = axes[r][k]
            if t in c['mean']:
                y = [np.nan if v is None else 100.0 * v for v in c['mean'][t]]
                ax.plot(c['step'], y, marker='o', markersize=3.5, linewidth=1.3)
            ax.set_title(f'{label}: {TRANSFORM_TITLES[t].lower()}', fontsize=9)
            ax.set_xlabel(c.get('step_name') or 'checkpoint')
            if k == 0:
                ax.set_ylabel('mean ' + METRIC_LABELS[TRANSFORM_METRIC[t]])
            ax.grid(True, alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path, dpi)
