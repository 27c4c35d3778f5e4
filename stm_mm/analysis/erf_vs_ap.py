"""Effective receptive field against detection accuracy by object size (paper section 6, Fig. 5).

Every model contributes its ERF@50 per stage (the ``erf.json`` of :func:`.erf.run_erf`, or its
entry in an ``erf_compare.json``) and its
COCO metrics (the JSON that ``tools/test.py`` leaves in ``<work_dir>/<timestamp>/<timestamp>.json``,
or a plain ``{"coco/bbox_mAP_s": ...}`` dict). The join gives one row per model; the correlation
of ERF@50 of one stage with box (and mask) AP of small, medium and large objects is Pearson's r
and Spearman's rho with two-sided p-values from Student's t with ``n - 2`` degrees of freedom.
With a handful of models the test is weak: at n = 5, |r| must exceed 0.88 for p < 0.05.

COCO reports -1 for a size with no ground-truth object; such values are missing (None) here.
"""
import csv
import json
import os
import os.path as osp

import numpy as np

SIZES = ('s', 'm', 'l')
SIZE_NAMES = dict(s='small', m='medium', l='large')
TASKS = ('bbox', 'segm')


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------
def load_erf(path, label=None):
    """``erf.json`` -> ``{stage (str): ERF@50}``; from an ``erf_compare.json`` (``{label:
    {stage: ERF@50}}``, several models) the entry of ``label``."""
    with open(path) as f:
        erf = json.load(f)
    if isinstance(erf, dict) and erf and all(isinstance(v, dict) for v in erf.values()):
        if label not in erf:
            raise ValueError(f'{path} holds the models {sorted(erf)}, not {label!r}; give the '
                             'label of one of them')
        erf = erf[label]
    if not isinstance(erf, dict) or not erf or not all(
            str(k).isdigit() and isinstance(v, (int, float)) for k, v in erf.items()):
        raise ValueError(f'{path} is not an erf.json ({{"0": ERF@50, ...}}); write one with '
                         'tools/analysis_tools/erf.py')
    return {str(k): float(v) for k, v in erf.items()}


def load_coco_metrics(path):
    """COCO metrics of a detector: ``{'bbox_mAP': ..., 'bbox_mAP_s': ..., 'segm_mAP_l': ...}``.

    Reads MMEngine's test JSON (one JSON object per line; the last one holding ``coco/`` keys
    wins) or a plain JSON object; drops the ``coco/`` prefix; -1 (no object of that size) and
    non-numbers become None.
    """
    with open(path) as f:
        text = f.read()
    try:
        records = [json.loads(text)]
    except json.JSONDecodeError:
        records = [json.loads(line) for line in text.splitlines() if line.strip()]
    records = [r for r in records if isinstance(r, dict)
               and any(k.split('/')[-1].startswith(TASKS) for k in r)]
    if not records:
        raise ValueError(f'no COCO metrics (bbox_mAP_s, ...) in {path}; pass the JSON that '
                         'tools/test.py writes to <work_dir>/<timestamp>/<timestamp>.json')
    out = {}
    for key, value in records[-1].items():
        key = key.split('/')[-1]
        if key.startswith(TASKS):
            ok = isinstance(value, (int, float)) and value >= 0
            out[key] = float(value) if ok else None
    return out


# --------------------------------------------------------------------------------------------
# Join and statistics
# --------------------------------------------------------------------------------------------
def join(models):
    """``[(label, erf, metrics), ...]`` -> one row per model: ``{label, erf: {stage: ERF@50},
    bbox_mAP_s, ..., segm_mAP_l}`` (AP keys missing from the metrics are None)."""
    rows, seen = [], set()
    for label, erf, metrics in models:
        if label in seen:
            raise ValueError(f'two models are labelled {label!r}; give them distinct labels')
        seen.add(label)
        row = dict(label=label, erf=dict(erf))
        for task in TASKS:
            for key in [f'{task}_mAP'] + [f'{task}_mAP_{s}' for s in SIZES]:
                row[key] = metrics.get(key)
        rows.append(row)
    return rows


def rank(values):
    """Ranks 1..n, ties get their average rank."""
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, kind='mergesort')
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    for v in np.unique(values):
        tied = values == v
        ranks[tied] = ranks[tied].mean()
    return ranks


def pearson(x, y):
    """Pearson's r of two equally long sequences (None when either is constant)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    x, y = x - x.mean(), y - y.mean()
    return float((x * y).sum() / np.sqrt((x * x).sum() * (y * y).sum()))


def spearman(x, y):
    """Spearman's rho: Pearson's r of the ranks (ties averaged)."""
    return pearson(rank(x), rank(y))


def p_value(r, n):
    """Two-sided p-value of a correlation ``r`` of ``n`` pairs (t with ``n - 2`` dof)."""
    from scipy.stats import t as student_t
    if r is None or n < 3:
        return None
    if abs(r) >= 1:
        return 0.0
    t = r * np.sqrt((n - 2) / (1 - r * r))
    return float(2 * student_t.sf(abs(t), n - 2))


def critical_r(n, alpha=0.05):
    """The smallest |r| with a two-sided p-value below ``alpha`` for ``n`` pairs."""
    from scipy.stats import t as student_t
    if n < 3:
        return None
    t = student_t.isf(alpha / 2, n - 2)
    return float(t / np.sqrt(n - 2 + t * t))


def correlations(rows, stage, tasks=TASKS):
    """Per metric ``<task>_mAP_<size>``: ``{n, pearson, pearson_p, spearman, spearman_p,
    critical_r}`` over the rows that have both the stage's ERF@50 and the metric."""
    out = {}
    for task in tasks:
        for size in SIZES:
            key = f'{task}_mAP_{size}'
            pairs = [(r['erf'][stage], r[key]) for r in rows
                     if r.get(key) is not None and stage in r['erf']]
            if not pairs:
                continue
            x, y = zip(*pairs)
            n = len(pairs)
            rp = pearson(x, y) if n >= 2 else None
            rs = spearman(x, y) if n >= 2 else None
            out[key] = dict(n=n, pearson=rp, pearson_p=p_value(rp, n), spearman=rs,
                            spearman_p=p_value(rs, n), critical_r=critical_r(n))
    return out


def summary_lines(corr, stage):
    """The correlation table as text lines, with the caveat on few models."""
    def fmt(v, spec='+.2f'):
        return 'n/a' if v is None else format(v, spec)

    lines = [f'ERF@50 of stage {int(stage) + 1} against AP (Pearson r / p, Spearman rho / p):']
    for key, c in corr.items():
        task, size = key.split('_mAP_')
        lines.append(f'  {"box" if task == "bbox" else "mask"} AP_{size} ({SIZE_NAMES[size]:6}) '
                     f'n={c["n"]}: r={fmt(c["pearson"])} (p={fmt(c["pearson_p"], ".2f")}), '
                     f'rho={fmt(c["spearman"])} (p={fmt(c["spearman_p"], ".2f")})')
    ns = sorted({c['n'] for c in corr.values()})
    for n in ns:
        crit = critical_r(n)
        lines.append(f'  caution: {n} models are a weak test: only |r| > '
                     f'{fmt(crit, ".2f")} reaches p < 0.05, and one model moves r a lot'
                     if crit is not None else
                     f'  caution: {n} models: too few for a correlation')
    return lines


# --------------------------------------------------------------------------------------------
# Models -> inputs
# --------------------------------------------------------------------------------------------
def parse_json_spec(spec):
    """``'ERF_JSON:METRICS_JSON[:LABEL]'`` -> ``(erf_json, metrics_json, label)``; the label
    defaults to the ERF file's folder name (and names the model in an ``erf_compare.json``)."""
    parts = spec.split(':')
    if len(parts) not in (2, 3) or not all(parts[:2]):
        raise ValueError(f'expected ERF_JSON:METRICS_JSON or ERF_JSON:METRICS_JSON:LABEL, got '
                         f'{spec!r}')
    label = parts[2] if len(parts) == 3 else osp.basename(osp.dirname(osp.abspath(parts[0])))
    return parts[0], parts[1], label


def model_inputs(config, checkpoint, label, out_dir, erf_kwargs, cfg_options=None, log=print):
    """ERF (:func:`.erf.run_erf` on the detector's backbone) and COCO metrics (``tools/test.py``'s
    test run) of a detection config and checkpoint (or ``'none'``: initialised weights); writes
    ``out_dir/erf.json`` and ``out_dir/coco_metrics.json``. Returns ``(label, erf_json,
    metrics_json)``."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from stm_mm.engine import apply_cli_options, run_job
    from stm_mm.engine.loading import check_checkpoint_file

    from .erf_report import run_erf
    details = run_erf([(config, checkpoint, label)], out_dir, log=log, **erf_kwargs)
    label = next(iter(details['models']))
    if checkpoint in (None, '', 'none', 'None'):
        checkpoint = None  # initialised weights (as in run_erf)
    else:
        check_checkpoint_file(checkpoint)
    cfg = apply_cli_options(Config.fromfile(config), work_dir=osp.join(out_dir, 'test'),
                            load_from=checkpoint, launcher='none', cfg_options=cfg_options)
    # the Runner makes its scope MMEngine's global default; the context restores the previous one
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope') or 'mmdet'):
        metrics = run_job(cfg, 'test')
    metrics_json = osp.join(out_dir, 'coco_metrics.json')
    with open(metrics_json, 'w') as f:
        json.dump(metrics, f, indent=2)
    return label, osp.join(out_dir, 'erf.json'), metrics_json


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------
def run_erf_vs_ap(entries, out_dir, stage=None, title=None, log=print):
    """Join, correlate, write and plot.

    Args:
        entries: ``[(label, erf_json, metrics_json), ...]``.
        stage: the ERF@50 stage (``'0'``...); default the last stage all models have.
    Returns:
        the result dict written to ``out_dir/erf_vs_ap.json`` (``stage``, ``rows``,
        ``correlations``, ``inputs``); also writes ``erf_vs_ap.csv`` and ``erf_vs_ap.png``.
    """
    from .plotting import plot_erf_vs_ap
    rows = join([(label, load_erf(e, label), load_coco_metrics(m)) for label, e, m in entries])
    common = set.intersection(*[set(r['erf']) for r in rows]) if rows else set()
    if stage is None:
        if not common:
            raise ValueError('the erf.json files share no stage; pass --stage')
        stage = max(common, key=int)
    stage = str(stage)
    if stage not in common:
        raise ValueError(f'stage {stage} is not in every erf.json (common stages: '
                         f'{sorted(common, key=int)})')
    corr = correlations(rows, stage)
    if not corr:
        raise ValueError('no model has AP by object size (bbox_mAP_s/m/l) in its metrics')
    result = dict(stage=stage, rows=rows, correlations=corr,
                  inputs={label: dict(erf=e, metrics=m) for label, e, m in entries})
    os.makedirs(out_dir, exist_ok=True)
    with open(osp.join(out_dir, 'erf_vs_ap.json'), 'w') as f:
        json.dump(result, f, indent=2)
    keys = [f'{t}_mAP{s}' for t in TASKS for s in ('', '_s', '_m', '_l')]
    stages = sorted({s for r in rows for s in r['erf']}, key=int)
    with open(osp.join(out_dir, 'erf_vs_ap.csv'), 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['model'] + [f'erf50_stage{int(s) + 1}' for s in stages] + keys)
        for r in rows:
            writer.writerow([r['label']] + [r['erf'].get(s, '') for s in stages]
                            + ['' if r[k] is None else r[k] for k in keys])
    plot_erf_vs_ap(rows, corr, stage, osp.join(out_dir, 'erf_vs_ap.png'), title=title)
    for line in summary_lines(corr, stage):
        log(line)
    return result


__all__ = [
    'load_erf', 'load_coco_metrics', 'join', 'rank', 'pearson', 'spearman', 'p_value',
    'critical_r', 'correlations', 'summary_lines', 'parse_json_spec', 'model_inputs',
    'run_erf_vs_ap'
]
