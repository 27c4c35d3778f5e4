"""``DualEvalEMAHook``: MMEngine's ``EMAHook`` that evaluates the raw AND the EMA weights.

The authors evaluate both models every epoch and keep ``max_accuracy`` and
``max_accuracy_ema`` with a best checkpoint of each. Here every validation reports the raw
(training) weights under the evaluator's usual keys (``accuracy/top1``) and the EMA weights
under the metric prefix + ``_ema`` (``accuracy_ema/top1``); both land in the log and in the
``metrics`` that ``CheckpointHook(save_best=[...])`` sees.

Checkpoints are written exactly as by ``EMAHook``: ``state_dict`` holds the EMA weights,
``ema_state_dict`` the raw ones under ``module.``-prefixed keys. Testing a checkpoint
(``tools/test.py``) evaluates ``test_weights``: ``'both'`` (default), ``'raw'`` or ``'ema'``;
the keys always say which weights they measure.
"""
import torch
from mmengine.hooks import EMAHook
from mmengine.logging import print_log
from mmengine.registry import HOOKS
from mmengine.runner.amp import autocast

from ..apis import state_dict_of
from ..patches import load_request, swap_ema_parameters

EMA_SUFFIX = '_ema'
TEST_WEIGHTS = ('both', 'raw', 'ema')


def set_ema_prefix(evaluator):
    """Make every metric of ``evaluator`` report ``<prefix>_ema/<name>``; returns the old
    prefixes for :func:`restore_prefix`."""
    saved = [m.prefix for m in evaluator.metrics]
    for metric, prefix in zip(evaluator.metrics, saved):
        metric.prefix = f'{prefix}{EMA_SUFFIX}' if prefix else EMA_SUFFIX[1:]
    return saved


def restore_prefix(evaluator, saved):
    for metric, prefix in zip(evaluator.metrics, saved):
        metric.prefix = prefix


def raw_weights_of(checkpoint):
    """The raw training weights of an ``EMAHook`` checkpoint (``ema_state_dict`` without the
    ``module.`` prefix), or None when the file holds only one set of weights."""
    if not isinstance(checkpoint.get('ema_state_dict'), dict):
        return None
    return state_dict_of(checkpoint, 'raw', strict=True)


@HOOKS.register_module()
class DualEvalEMAHook(EMAHook):
    """``EMAHook`` whose validation (and test) evaluates the raw and the EMA weights.

    Args:
        test_weights (str): what a test run evaluates: ``'both'``, ``'raw'`` or ``'ema'``.
            Validation during training always evaluates both.
        **kwargs: ``EMAHook`` arguments (``momentum``, ``update_buffers``, ...).
    """

    def __init__(self, test_weights='both', **kwargs):
        super().__init__(**kwargs)
        if test_weights not in TEST_WEIGHTS:
            raise ValueError(f'DualEvalEMAHook(test_weights={test_weights!r}) is not '
                             f'valid; fix: use one of {", ".join(TEST_WEIGHTS)}')
        self.test_weights = test_weights
        self._loaded_raw = None       # raw weights of a checkpoint loaded for testing
        self._single_weights = False  # the loaded checkpoint holds one set of weights only

    # ---- which weights are where ----
    def before_train(self, runner):
        super().before_train(runner)
        self._loaded_raw, self._single_weights = None, False

    def after_load_checkpoint(self, runner, checkpoint):
        # Runs before the runner loads ``state_dict`` (the EMA weights) into the model. The
        # parent loads them into the EMA copy too (and, on resume, swaps the raw weights back).
        resuming = bool(load_request(runner)[0])
        super().after_load_checkpoint(runner, checkpoint)
        if not resuming:
            self._loaded_raw = raw_weights_of(checkpoint)
            self._single_weights = self._loaded_raw is None

    def _use_loaded_weights(self):
        """After a ``load_from`` (test, or val without training) the model holds the file's
        ``state_dict`` (EMA): give it the raw weights; the EMA copy keeps the EMA."""
        if self._loaded_raw is not None:
            self.src_model.load_state_dict(self._loaded_raw)
            self._loaded_raw = None
        if self._single_weights:
            print_log('The checkpoint holds one set of weights (no `ema_state_dict`): they '
                      'are evaluated once, under the usual metric keys.', logger='current')

    # ---- validation: the loop evaluates the raw weights, this hook adds the EMA ----
    def before_val_epoch(self, runner):
        self._use_loaded_weights()

    def after_val_epoch(self, runner, metrics=None):
        if not self._single_weights:
            self._add_ema_metrics(runner, runner.val_loop, 'val', metrics)

    # ---- test: ``test_weights`` ----
    def before_test_epoch(self, runner):
        self._use_loaded_weights()
        if not self._single_weights and self.test_weights == 'ema':
            swap_ema_parameters(self)
            self._saved_prefix = set_ema_prefix(runner.test_loop.evaluator)

    def after_test_epoch(self, runner, metrics=None):
        if self._single_weights:
            return
        if self.test_weights == 'ema':
            restore_prefix(runner.test_loop.evaluator, self._saved_prefix)
            swap_ema_parameters(self)
        elif self.test_weights == 'both':
            self._add_ema_metrics(runner, runner.test_loop, 'test', metrics)

    # ---- the second evaluation ----
    def _add_ema_metrics(self, runner, loop, mode, metrics):
        """Evaluate the EMA weights on ``loop``'s data; add their keys to ``metrics`` and to
        the message hub (``<mode>/<key>``, where the logger reads them)."""
        swap_ema_parameters(self)
        saved = set_ema_prefix(loop.evaluator)
        try:
            ema_metrics = self._evaluate(runner, loop, mode)
        finally:
            restore_prefix(loop.evaluator, saved)
            swap_ema_parameters(self)
        for key, value in ema_metrics.items():
            if isinstance(value, (int, float)) or (torch.is_tensor(value)
                                                   and value.numel() == 1):
                runner.message_hub.update_scalar(f'{mode}/{key}', value)
            else:
                runner.message_hub.update_info(f'{mode}/{key}', value)
        if metrics is not None:
            metrics.update(ema_metrics)

    @torch.no_grad()
    def _evaluate(self, runner, loop, mode):
        """``loop``'s data through ``runner.model`` and its evaluator, without iteration hooks."""
        runner.model.eval()
        step = runner.model.val_step if mode == 'val' else runner.model.test_step
        for data_batch in loop.dataloader:
            with autocast(enabled=getattr(loop, 'fp16', False)):
                outputs = step(data_batch)
            loop.evaluator.process(data_samples=outputs, data_batch=data_batch)
        return loop.evaluator.evaluate(len(loop.dataloader.dataset))
