"""Mask R-CNN with a micro backbone of every STM: a training step and inference on the CPU,
on two odd-sized images (150x203, 97x131) padded to multiples of 32 by the data preprocessor."""
import pytest
import torch

from stm_mm.models import STM_NAMES

from ..helpers.detectors import odd_sized_batch, slim_detector


@pytest.mark.parametrize('stm', STM_NAMES)
def test_train_and_inference_step(stm):
    torch.manual_seed(0)
    model = slim_detector(stm)
    model.train()
    batch = odd_sized_batch()
    data = model.data_preprocessor(batch, True)
    assert data['inputs'].shape == (2, 3, 160, 224)  # padded to 32
    losses = model(**data, mode='loss')
    for name in ('loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox', 'loss_mask'):
        assert name in losses
    loss, log_vars = model.parse_losses(losses)
    assert torch.isfinite(loss) and all(torch.isfinite(torch.as_tensor(v))
                                        for v in log_vars.values())
    loss.backward()
    grads = [p.grad for p in model.backbone.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    assert model.backbone.stem[0].weight.grad.abs().sum() > 0

    model.eval()
    with torch.no_grad():
        results = model.test_step(odd_sized_batch())
    assert len(results) == 2
    for result, (h, w) in zip(results, ((150, 203), (97, 131))):
        pred = result.pred_instances
        assert pred.bboxes.shape[1] == 4 and len(pred.scores) == len(pred.labels)
        assert pred.masks.shape[1:] == (h, w)  # masks at the original (unpadded) size
        if len(pred.bboxes):
            assert torch.isfinite(pred.bboxes).all()
            assert (pred.bboxes[:, 2] <= w + 1e-3).all() and (pred.bboxes[:, 3] <= h + 1e-3).all()
