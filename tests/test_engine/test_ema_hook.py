"""``DualEvalEMAHook`` in the project's Runner (``ReliableRunner``, what tools/train.py and
tools/test.py build) on a tiny generated problem.

A linear 3-class model on one-hot inputs: the weights alone decide the accuracy, so a hook sets
the raw and the EMA weights to hand-chosen values before each validation and the metrics must be
exactly those of the chosen weights -- raw under ``accuracy/top1``, EMA under
``accuracy_ema/top1`` -- with a best checkpoint of each, and ``tools/test.py``'s path (a Runner
with ``load_from``) must evaluate the weights ``test_weights`` asks for.
"""
import os.path as osp
import uuid

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmpretrain.structures import DataSample

from stm_mm.checkpoint_io import load_checkpoint
from stm_mm.engine import DualEvalEMAHook, ReliableRunner, apply_cli_options

from .. import ROOT

LABELS = [0, 1, 2, 0, 1, 2]
# weights -> accuracy on LABELS with one-hot inputs (bias breaks ties)
GOOD = (torch.eye(3), torch.zeros(3))                                   # 100 %
TWO_OF_THREE = (torch.tensor([[1., 0, 0], [0, 1, 1], [0, 0, 0]]), torch.zeros(3))  # 66.67 %
CONSTANT = (torch.zeros(3, 3), torch.tensor([1., 0, 0]))                # 33.33 %
# per validation epoch: (raw weights, EMA weights)
SCHEDULE = [(TWO_OF_THREE, CONSTANT), (CONSTANT, GOOD), (GOOD, TWO_OF_THREE)]


class Linear3(BaseModel):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3, 3)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        logits = self.fc(torch.stack(inputs))
        if mode == 'loss':
            labels = torch.cat([s.gt_label for s in data_samples])
            return dict(loss=torch.nn.functional.cross_entropy(logits, labels))
        return [s.set_pred_score(p) for s, p in zip(data_samples, logits.softmax(-1))]


def _data():
    return [dict(inputs=torch.eye(3)[y], data_samples=DataSample().set_gt_label(y))
            for y in LABELS]


def reference_top1(weights):
    """Top-1 (%) of a (W, b) pair on the data, computed directly."""
    w, b = weights
    pred = (torch.eye(3)[LABELS] @ w.T + b).argmax(-1)
    return 100.0 * (pred == torch.tensor(LABELS)).float().mean().item()


def _set(module, weights):
    with torch.no_grad():
        module.fc.weight.copy_(weights[0])
        module.fc.bias.copy_(weights[1])


class ForceWeights(Hook):
    """Before validation N: raw and EMA weights := SCHEDULE[N]; records the metrics after."""
    priority = 'HIGHEST'

    def __init__(self):
        self.metrics = []

    def before_val_epoch(self, runner):
        raw, ema = SCHEDULE[len(self.metrics)]
        hook = next(h for h in runner.hooks if isinstance(h, DualEvalEMAHook))
        _set(runner.model, raw)
        _set(hook.ema_model.module, ema)

    def after_val_epoch(self, runner, metrics=None):
        self.metrics.append(metrics)  # the dict itself: later hooks (the EMA hook) add to it


def _loader():
    return dict(dataset=_data(), batch_size=3, num_workers=0,
                collate_fn=dict(type='pseudo_collate'),
                sampler=dict(type='DefaultSampler', shuffle=False))


def _runner(work_dir, custom_hooks, **kw):
    return ReliableRunner(model=Linear3(), work_dir=str(work_dir), default_scope='mmpretrain',
                          experiment_name=f'test_ema_{uuid.uuid4().hex[:8]}',
                          custom_hooks=custom_hooks, log_level='WARNING', **kw)


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('dual_ema')
    force = ForceWeights()
    runner = _runner(
        work_dir, [dict(type='DualEvalEMAHook', momentum=0.5, priority='ABOVE_NORMAL'), force],
        train_dataloader=_loader(), val_dataloader=_loader(),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=dict(by_epoch=True, max_epochs=len(SCHEDULE), val_interval=1), val_cfg=dict(),
        val_evaluator=dict(type='Accuracy', topk=(1, )),
        default_hooks=dict(logger=dict(type='LoggerHook', interval=1),
                           checkpoint=dict(type='CheckpointHook', interval=1,
                                           save_best=['accuracy/top1', 'accuracy_ema/top1'],
                                           rule='greater')))
    runner.train()
    return runner, force, work_dir


def test_validation_reports_raw_and_ema(trained):
    runner, force, _ = trained
    assert len(force.metrics) == len(SCHEDULE)
    for metrics, (raw, ema) in zip(force.metrics, SCHEDULE):
        assert set(metrics) == {'accuracy/top1', 'accuracy_ema/top1'}
        assert metrics['accuracy/top1'] == pytest.approx(reference_top1(raw))
        assert metrics['accuracy_ema/top1'] == pytest.approx(reference_top1(ema))
    # both reach the logger (message hub); the evaluator got its own prefix back
    hub = runner.message_hub
    assert hub.get_scalar('val/accuracy/top1').current() == pytest.approx(100.0)
    assert hub.get_scalar('val/accuracy_ema/top1').current() == pytest.approx(200 / 3)
    assert runner.val_loop.evaluator.metrics[0].prefix == 'accuracy'


def test_best_checkpoint_of_each(trained):
    _, _, work_dir = trained
    # raw best at epoch 3 (100 %), EMA best at epoch 2 (100 %)
    assert osp.isfile(osp.join(work_dir, 'best_accuracy_top1_epoch_3.pth'))
    assert osp.isfile(osp.join(work_dir, 'best_accuracy_ema_top1_epoch_2.pth'))
    # MMEngine's EMAHook format, unchanged: `state_dict` = EMA, `ema_state_dict` = raw weights
    # (`module.` keys), here those SCHEDULE forced for validation 2
    ckpt = load_checkpoint(osp.join(work_dir, 'best_accuracy_ema_top1_epoch_2.pth'))
    raw, ema = SCHEDULE[1]
    assert set(ckpt['ema_state_dict']) == {'steps', 'module.fc.weight', 'module.fc.bias'}
    torch.testing.assert_close(ckpt['state_dict']['fc.weight'], ema[0])
    torch.testing.assert_close(ckpt['state_dict']['fc.bias'], ema[1])
    torch.testing.assert_close(ckpt['ema_state_dict']['module.fc.weight'], raw[0])
    torch.testing.assert_close(ckpt['ema_state_dict']['module.fc.bias'], raw[1])


@pytest.mark.parametrize('test_weights,expected', [
    ('both', {'accuracy/top1': 'raw', 'accuracy_ema/top1': 'ema'}),
    ('raw', {'accuracy/top1': 'raw'}),
    ('ema', {'accuracy_ema/top1': 'ema'}),
])
def test_test_weights(trained, tmp_path, test_weights, expected):
    """``tools/test.py``'s path: a Runner with ``load_from`` evaluates the requested weights
    of the best-EMA checkpoint written above (EMA in ``state_dict``, raw in
    ``ema_state_dict``)."""
    raw, ema = SCHEDULE[1]
    path = osp.join(trained[2], 'best_accuracy_ema_top1_epoch_2.pth')
    runner = _runner(tmp_path, [dict(type='DualEvalEMAHook', momentum=0.5,
                                     test_weights=test_weights, priority='ABOVE_NORMAL')],
                     test_dataloader=_loader(), test_cfg=dict(),
                     test_evaluator=dict(type='Accuracy', topk=(1, )), load_from=path)
    metrics = runner.test()
    assert set(metrics) == set(expected)
    for key, which in expected.items():
        assert metrics[key] == pytest.approx(reference_top1(raw if which == 'raw' else ema))
    assert runner.message_hub.get_scalar(f'test/{key}').current() == pytest.approx(metrics[key])
    assert runner.test_loop.evaluator.metrics[0].prefix == 'accuracy'


def test_val_of_a_loaded_checkpoint(trained, tmp_path):
    """``runner.val()`` with ``load_from`` (no training) also separates the two."""
    raw, ema = SCHEDULE[1]
    # (the checkpoint hook stays: ReliableCheckpointHook must cope with a val() without training)
    runner = _runner(tmp_path, [dict(type='DualEvalEMAHook', priority='ABOVE_NORMAL')],
                     val_dataloader=_loader(), val_cfg=dict(),
                     val_evaluator=dict(type='Accuracy', topk=(1, )),
                     load_from=osp.join(trained[2], 'best_accuracy_ema_top1_epoch_2.pth'))
    assert runner.val() == {'accuracy/top1': pytest.approx(reference_top1(raw)),
                            'accuracy_ema/top1': pytest.approx(reference_top1(ema))}


def test_single_weight_checkpoint(tmp_path):
    """A file without ``ema_state_dict`` (e.g. a converted release) is evaluated once."""
    path = str(tmp_path / 'converted.pth')
    torch.save(dict(state_dict={'fc.weight': GOOD[0], 'fc.bias': GOOD[1]}, meta=dict()), path)
    runner = _runner(tmp_path, [dict(type='DualEvalEMAHook', test_weights='ema')],
                     test_dataloader=_loader(), test_cfg=dict(),
                     test_evaluator=dict(type='Accuracy', topk=(1, )), load_from=path)
    assert runner.test() == {'accuracy/top1': pytest.approx(100.0)}


def test_bad_option():
    with pytest.raises(ValueError, match="test_weights='best'.*both, raw, ema"):
        DualEvalEMAHook(test_weights='best')


def test_imagenet_configs(tmp_path):
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'cls', 'u_swin_tiny_in1k.py'))
    hooks = [h for h in cfg.custom_hooks if h.type == 'DualEvalEMAHook']
    assert len(hooks) == 1 and hooks[0].test_weights == 'both'
    ckpt = cfg.default_hooks.checkpoint
    assert list(ckpt.save_best) == ['accuracy/top1', 'accuracy_ema/top1']
    # the documented override of tools/test.py
    cfg = apply_cli_options(cfg, work_dir=str(tmp_path),
                            cfg_options={'custom_hooks.0.test_weights': 'raw'})
    assert cfg.custom_hooks[0].test_weights == 'raw'
