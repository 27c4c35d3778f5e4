"""``CompileBackboneHook``: ``torch.compile`` the backbone's forward when training starts.

What ``compile=True`` / ``compile=dict(...)`` (``tools/train.py --compile``) means under
:class:`~stm_mm.engine.runner.ReliableRunner`. MMEngine compiles the whole ``train_step``,
optimizer step included, which dynamo of torch 2.14 cannot trace (an internal error in its
optimizer support with MMEngine's ``OptimWrapper``); the backbone, where nearly all of the step's
time goes, compiles to one graph for every STM (``tests/test_models/test_compiled_training.py``).
"""
import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS


@HOOKS.register_module()
class CompileBackboneHook(Hook):
    """Args: options (bool | dict): ``True`` or the keyword arguments of ``torch.compile``."""

    priority = 'VERY_LOW'

    def __init__(self, options=True):
        if not isinstance(options, (bool, dict)):
            raise TypeError(f'compile={options!r} is not valid; fix: use True or a dict of '
                            'torch.compile arguments')
        self.options = {} if options is True else dict(options)

    def before_train(self, runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        module = getattr(model, 'backbone', model)
        module.forward = torch.compile(module.forward, **self.options)
        runner.logger.info(f'compiled the {type(module).__name__} forward (the train_step of '
                           'MMEngine stays eager); the first iterations are slow')
