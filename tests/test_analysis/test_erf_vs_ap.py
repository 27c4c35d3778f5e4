"""ERF against AP by object size (Fig. 5): reading the two JSON files, the join, the correlations
against hand-computed values, and the tool's outputs."""
import importlib.util
import json
import math
import os.path as osp

import pytest

from stm_mm.analysis import erf_vs_ap as eva

from .. import ROOT


def _cli():
    spec = importlib.util.spec_from_file_location(
        'erf_vs_ap_cli', osp.join(ROOT, 'tools', 'analysis_tools', 'erf_vs_ap.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_model(root, name, erf, ap_s, ap_m, ap_l, segm=True):
    """erf.json + an MMEngine-style test JSON (a train-log line first, the metrics last)."""
    folder = root / name
    folder.mkdir()
    (folder / 'erf.json').write_text(json.dumps({str(i): v for i, v in enumerate(erf)}))
    metrics = {'coco/bbox_mAP': (ap_s + ap_m) / 2, 'coco/bbox_mAP_s': ap_s,
               'coco/bbox_mAP_m': ap_m, 'coco/bbox_mAP_l': ap_l, 'data_time': 0.1}
    if segm:
        metrics.update({'coco/segm_mAP_s': ap_s / 2, 'coco/segm_mAP_m': ap_m / 2,
                        'coco/segm_mAP_l': ap_l})
    lines = [json.dumps(dict(lr=0.1, loss=1.0)), json.dumps(metrics)]
    (folder / 'metrics.json').write_text('\n'.join(lines) + '\n')
    return f'{folder / "erf.json"}:{folder / "metrics.json"}'


def test_load_coco_metrics(tmp_path):
    spec = _write_model(tmp_path, 'a', [0.1, 0.2], 0.3, 0.5, -1)
    metrics = eva.load_coco_metrics(spec.split(':')[1])
    assert metrics['bbox_mAP_s'] == 0.3 and metrics['bbox_mAP_m'] == 0.5
    assert metrics['bbox_mAP_l'] is None  # COCO's -1: no large object
    assert 'data_time' not in metrics and 'lr' not in metrics
    plain = tmp_path / 'plain.json'
    plain.write_text(json.dumps({'bbox_mAP_s': 0.25, 'segm_mAP_l': 0.5}))
    assert eva.load_coco_metrics(str(plain)) == {'bbox_mAP_s': 0.25, 'segm_mAP_l': 0.5}
    plain.write_text(json.dumps({'accuracy/top1': 90.0}))
    with pytest.raises(ValueError, match='no COCO metrics'):
        eva.load_coco_metrics(str(plain))
    with pytest.raises(ValueError, match='not an erf.json'):
        eva.load_erf(str(plain))
    compare = tmp_path / 'erf_compare.json'
    compare.write_text(json.dumps({'A': {'0': 0.1, '3': 0.5}, 'B': {'0': 0.2, '3': 0.6}}))
    assert eva.load_erf(str(compare), 'B') == {'0': 0.2, '3': 0.6}
    with pytest.raises(ValueError, match=r"models \['A', 'B'\], not 'C'"):
        eva.load_erf(str(compare), 'C')


def test_join_rows():
    rows = eva.join([('A', {'0': 0.1, '3': 0.6}, {'bbox_mAP_s': 0.2, 'bbox_mAP_l': None}),
                     ('B', {'0': 0.2, '3': 0.5}, {'bbox_mAP_s': 0.3, 'segm_mAP_s': 0.1})])
    assert [r['label'] for r in rows] == ['A', 'B']
    assert rows[0]['erf'] == {'0': 0.1, '3': 0.6}
    assert rows[0]['bbox_mAP_s'] == 0.2 and rows[0]['bbox_mAP_l'] is None
    assert rows[0]['segm_mAP_s'] is None and rows[1]['segm_mAP_s'] == 0.1
    with pytest.raises(ValueError, match='distinct labels'):
        eva.join([('A', {}, {}), ('A', {}, {})])


def _t3_two_sided_p(t):
    """Two-sided p of Student's t with 3 degrees of freedom (closed form of its CDF)."""
    u = t / math.sqrt(3)
    cdf = 0.5 + (u / (1 + u * u) + math.atan(u)) / math.pi
    return 2 * (1 - cdf)


def test_correlations_hand_computed():
    """x = 1..5, y = 2,1,4,3,5: sum dx dy = 8, sum dx^2 = sum dy^2 = 10, so r = rho = 0.8;
    t = 0.8 sqrt(3 / 0.36) with 3 dof."""
    x, y = [1, 2, 3, 4, 5], [2, 1, 4, 3, 5]
    assert eva.pearson(x, y) == pytest.approx(0.8, abs=1e-12)
    assert eva.spearman(x, y) == pytest.approx(0.8, abs=1e-12)
    t = 0.8 * math.sqrt(3 / 0.36)
    assert eva.p_value(0.8, 5) == pytest.approx(_t3_two_sided_p(t), rel=1e-9)
    # ties get their average rank: ranks x = 1, 2.5, 2.5, 4; rho = 4.5 / sqrt(4.5 * 5)
    assert eva.rank([1, 2, 2, 3]).tolist() == [1, 2.5, 2.5, 4]
    assert eva.spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(4.5 / math.sqrt(22.5))
    # monotone but not linear: rho = 1; dy = -36, -27, 63, so r = 99 / sqrt(2 * 5994)
    assert eva.spearman([1, 2, 3], [1, 10, 100]) == pytest.approx(1.0)
    assert eva.pearson([1, 2, 3], [1, 10, 100]) == pytest.approx(99 / math.sqrt(2 * 5994))
    assert eva.pearson([1, 2, 3], [4, 4, 4]) is None  # constant: undefined
    # the |r| that reaches p = 0.05 at n = 5 has p = 0.05
    crit = eva.critical_r(5)
    assert eva.p_value(crit, 5) == pytest.approx(0.05, rel=1e-9)
    assert 0.87 < crit < 0.89


def test_correlations_skip_missing_sizes():
    rows = eva.join([
        (f'm{k}', {'3': e}, {'bbox_mAP_s': s, 'bbox_mAP_m': 0.5, 'bbox_mAP_l': l})
        for k, (e, s, l) in enumerate([(1, 2, None), (2, 1, 0.3), (3, 4, 0.4), (4, 3, None),
                                       (5, 5, 0.2)])])
    corr = eva.correlations(rows, '3')
    assert corr['bbox_mAP_s']['n'] == 5 and corr['bbox_mAP_s']['pearson'] == pytest.approx(0.8)
    assert corr['bbox_mAP_m']['n'] == 5 and corr['bbox_mAP_m']['pearson'] is None
    assert corr['bbox_mAP_l']['n'] == 3  # two models without large objects left out
    assert 'segm_mAP_s' not in corr
    text = '\n'.join(eva.summary_lines(corr, '3'))
    assert 'n=5' in text and 'weak test' in text and '0.88' in text


def test_tool_writes_table_and_figure(tmp_path, capsys):
    specs = [_write_model(tmp_path, name, [0.1, 0.2, e3 / 2, e3], s, m, l)
             for name, e3, s, m, l in [('halo', 0.6, 0.30, 0.50, 0.70),
                                       ('pvt', 0.5, 0.20, 0.45, 0.60),
                                       ('swin', 0.7, 0.25, 0.55, 0.65)]]
    out = tmp_path / 'out'
    _cli().main(['--from-json', *specs, specs[0].replace('halo', 'pvt') + ':again',
                 '--out-dir', str(out)])
    res = json.loads((out / 'erf_vs_ap.json').read_text())
    assert res['stage'] == '3'
    assert [r['label'] for r in res['rows']] == ['halo', 'pvt', 'swin', 'again']
    assert res['correlations']['bbox_mAP_l']['n'] == 4
    assert set(res['correlations']) == {f'{t}_mAP_{s}' for t in ('bbox', 'segm')
                                        for s in 'sml'}
    csv_rows = (out / 'erf_vs_ap.csv').read_text().strip().splitlines()
    assert csv_rows[0].startswith('model,erf50_stage1,erf50_stage2,erf50_stage3,erf50_stage4')
    assert len(csv_rows) == 5
    assert (out / 'erf_vs_ap.png').stat().st_size > 5000
    assert 'weak test' in capsys.readouterr().out
    _cli().main(['--from-json', *specs, '--stage', '1', '--out-dir', str(out)])
    res = json.loads((out / 'erf_vs_ap.json').read_text())
    assert res['stage'] == '1' and res['correlations']['bbox_mAP_s']['pearson'] is None
    capsys.readouterr()
    for argv, message in ((['--from-json', *specs, '--stage', '7'], 'stage 7 is not in every '
                           'erf.json'), (['--from-json', 'only_one.json'], 'ERF_JSON:METRICS_JSON')):
        with pytest.raises(SystemExit) as exit_info:
            _cli().main([*argv, '--out-dir', str(out)])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.slow
def test_tool_from_a_detection_config(tmp_path):
    """--model: the ERF of an initialised digit-scenes Mask R-CNN's backbone and a test run on
    two generated scenes (every detection kept) give a row with four stages and AP by size."""
    from mmengine.registry import DefaultScope

    from stm_mm.datasets.digit_scenes import generate_digit_scenes
    def scope():
        current = DefaultScope.get_current_instance()
        return current.scope_name if current is not None else None

    before = scope()
    scenes = f'{tmp_path}/scenes/'
    generate_digit_scenes(scenes, num_train=1, num_val=2, close_up_fraction=0)
    cfg = osp.join(ROOT, 'configs/det/digit_scenes/u_dwconv_micro_maskrcnn_digits.py')
    out = tmp_path / 'out'
    _cli().main(['--model', f'{cfg}:none:init', '--erf-data', 'noise', '--input-size', '64',
                 '--erf-images', '1', '--out-dir', str(out), '--cfg-options',
                 f'test_dataloader.dataset.data_root={scenes}',
                 f'test_evaluator.ann_file={scenes}annotations/instances_val.json',
                 'test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False',
                 'model.test_cfg.rcnn.score_thr=0.0'])
    [row] = json.loads((out / 'erf_vs_ap.json').read_text())['rows']
    assert row['label'] == 'init' and sorted(row['erf']) == ['0', '1', '2', '3']
    assert 0 <= row['bbox_mAP_s'] <= 1
    model_dir = out / 'models' / '0_init'
    assert json.loads((model_dir / 'erf.json').read_text()) == row['erf']
    assert eva.load_coco_metrics(str(model_dir / 'coco_metrics.json'))['bbox_mAP_s'] == \
        row['bbox_mAP_s']
    assert scope() == before  # the test run left MMEngine's default scope as it was
