"""Invariance over training (Fig. 7c): the checkpoints of a run, the loop over them, the mean
consistency per checkpoint and the tool's outputs on a tiny classifier."""
import json
import os.path as osp

import pytest
import torch

from stm_mm.analysis import invariance as inv

from .. import ROOT
from .test_invariance import _cli


def _touch(folder, *names):
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        (folder / n).write_bytes(b'')
    return folder


def test_expand_checkpoints(tmp_path):
    run = _touch(tmp_path / 'run', 'epoch_10.pth', 'epoch_2.pth', 'epoch_4.pth', 'best.pth',
                 'last_checkpoint')
    assert [osp.basename(p) for p in inv.expand_checkpoints(str(run))] == [
        'epoch_2.pth', 'epoch_4.pth', 'epoch_10.pth']
    assert [osp.basename(p) for p in inv.expand_checkpoints(str(run / '*.pth'))] == [
        'epoch_2.pth', 'epoch_4.pth', 'epoch_10.pth', 'best.pth']
    single = str(run / 'epoch_4.pth')
    assert inv.expand_checkpoints(single) == [single]
    assert inv.expand_checkpoints('none') == ['none']
    assert inv.checkpoint_step('w/iter_400.pth') == ('iter', 400)
    with pytest.raises(FileNotFoundError, match='no checkpoint matches'):
        inv.expand_checkpoints(str(run / 'iter_*.pth'))
    with pytest.raises(FileNotFoundError, match='no epoch_'):
        inv.expand_checkpoints(str(_touch(tmp_path / 'empty', 'model.pth')))


def test_evaluate_runs_visits_every_checkpoint(tmp_path):
    run = _touch(tmp_path / 'run', 'epoch_1.pth', 'epoch_3.pth', 'epoch_2.pth')
    calls = []

    def evaluate(config, checkpoint, label):
        calls.append((config, osp.basename(checkpoint)))
        return label, dict(step=inv.checkpoint_step(checkpoint)[1])

    final, training = inv.evaluate_runs(
        [('a.py', str(run), 'A'), ('b.py', str(run / 'epoch_2.pth'), 'A')], evaluate,
        log=lambda *_: None)
    assert calls == [('a.py', 'epoch_1.pth'), ('a.py', 'epoch_2.pth'), ('a.py', 'epoch_3.pth'),
                     ('b.py', 'epoch_2.pth')]
    assert final == {'A': dict(step=3), 'A (2)': dict(step=2)}  # last checkpoint of each run
    assert list(training) == ['A']
    assert [osp.basename(c) for c, _ in training['A']] == ['epoch_1.pth', 'epoch_2.pth',
                                                           'epoch_3.pth']


def test_training_curves_average_without_identity():
    def res(t0, t1, t2, r1):
        return dict(translation=dict(magnitude=[0, 1, 2], consistency=[t0, t1, t2]),
                    rotation=dict(magnitude=[0, 15], consistency=[1.0, r1]))

    curves = inv.training_curves({'A': [('w/epoch_2.pth', res(1.0, 0.5, 0.3, 0.25)),
                                        ('w/epoch_4.pth', res(1.0, 0.9, None, 0.75))]})
    c = curves['A']
    assert c['step'] == [2, 4] and c['step_name'] == 'epoch'
    assert c['mean']['translation'] == [pytest.approx(0.4), pytest.approx(0.9)]
    assert c['mean']['rotation'] == [0.25, 0.75]
    det = inv.training_curves({'D': [('x.pth', dict(scale=dict(
        magnitude=[0.5, 1.0, 2.0], bbox_mAP=[0.2, 1.0, 0.4]))), ('y.pth', dict(scale=dict(
            magnitude=[0.5, 1.0, 2.0], bbox_mAP=[0.6, 1.0, 0.8])))]})
    assert det['D']['step'] == [1, 2] and det['D']['step_name'] == 'checkpoint'
    assert det['D']['mean']['scale'] == [pytest.approx(0.3), pytest.approx(0.7)]


@pytest.mark.slow
def test_tool_over_training_checkpoints(tmp_path):
    """cls mode with a work dir of two checkpoints of a tiny classifier: both are evaluated,
    invariance_cls.json holds the last one, the training files one row per checkpoint."""
    from stm_mm.analysis.loaded_model import load_model
    cfg = osp.join(ROOT, 'configs/_base_/models/u_dwconv_micro.py')
    run = tmp_path / 'run'
    run.mkdir()
    model = load_model(cfg, None).model
    torch.save(dict(state_dict=model.state_dict()), run / 'epoch_1.pth')
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.5 * torch.randn_like(p))
    torch.save(dict(state_dict=model.state_dict()), run / 'epoch_2.pth')
    out = tmp_path / 'inv'
    _cli().main(['cls', cfg, str(run), '--label', 'tiny', '--num-images', '4', '--input-size',
                 '32', '--shifts', '0,3', '--angles', '0,10', '--batch-size', '4', '--out-dir',
                 str(out), '--no-progress'])
    final = json.loads((out / 'invariance_cls.json').read_text())
    assert final['models']['tiny']['checkpoint'].endswith('epoch_2.pth')
    training = json.loads((out / 'invariance_cls_training.json').read_text())
    curve = training['models']['tiny']
    assert curve['step'] == [1, 2] and curve['step_name'] == 'epoch'
    assert len(curve['results']) == 2
    assert curve['results'][1] == final['models']['tiny']
    for t, mag in (('translation', 3), ('rotation', 10)):
        for k, res in enumerate(curve['results']):
            assert res[t]['magnitude'] == [0, mag]
            assert curve['mean'][t][k] == res[t]['consistency'][1]
    rows = (out / 'invariance_cls_training.csv').read_text().strip().splitlines()
    assert len(rows) == 1 + 2 * 2
    assert (out / 'invariance_cls_training.png').stat().st_size > 5000
