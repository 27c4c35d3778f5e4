"""``init_cfg=dict(type='PretrainedClassifier', checkpoint=CLS.pth, weights='raw')``.

A detection backbone initialised from a classification checkpoint (ours, MMEngine format with or
without ``EMAHook``; the authors'; or a ``cls2det`` output) by :func:`stm_mm.transfer.
transfer_cls_to_det`: ``weights='raw'`` takes the raw training weights, as the authors' detector
does (``checkpoint['model']``); ``'ema'`` the EMA. Stage norms are dropped, position tables
resized to the backbone, and a checkpoint lacking any backbone tensor other than the detector's
fresh ``out_norms`` is an error. The file is read without running code from it.
"""
from mmengine.logging import print_log
from mmengine.model.weight_init import update_init_info
from mmengine.registry import WEIGHT_INITIALIZERS


@WEIGHT_INITIALIZERS.register_module()
class PretrainedClassifier:
    """Load the backbone of a classification checkpoint into the module (a backbone)."""

    def __init__(self, checkpoint, weights='raw'):
        if weights not in ('raw', 'ema'):
            raise ValueError(f"init_cfg PretrainedClassifier: weights must be 'raw' or 'ema', "
                             f'got {weights!r}')
        self.checkpoint, self.weights = checkpoint, weights

    def __call__(self, module):
        from ..transfer import BACKBONE, transfer_cls_to_det
        shapes = {k: tuple(v.shape) for k, v in module.state_dict().items()}
        result, _ = transfer_cls_to_det(self.checkpoint, use_ema=self.weights == 'ema',
                                        target_shapes=shapes)
        state = {k[len(BACKBONE):]: v for k, v in result['state_dict'].items()}
        module.load_state_dict(state, strict=False)  # only the fresh out_norms are missing
        print_log(f'PretrainedClassifier: loaded {len(state)} backbone tensors '
                  f'({self.weights} weights) from {self.checkpoint}', logger='current')
        if hasattr(module, '_params_init_info'):  # MMEngine's per-parameter init log
            update_init_info(module, init_info=self._get_init_info())

    def _get_init_info(self):
        return f'{type(self).__name__}: {self.weights} weights of {self.checkpoint}'
