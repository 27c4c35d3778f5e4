"""The README's "bring your own STM" path: one class, one decorator, every config works."""
import pytest
import torch
import torch.nn.functional as F

from stm_mm.models import UnifiedBackbone
from stm_mm.models.mixers import TokenMixer, unregister_mixer
from stm_mm.registry import TOKEN_MIXERS


class AveragePoolMixer(TokenMixer):
    """PoolFormer's mixer: ``avg_pool3x3(x) - x`` (no parameters)."""

    def __init__(self, dim, num_heads=None, stage_index=0, block_index=0, pool_size=3):
        super().__init__()
        self.pool_size = pool_size

    def forward(self, x):
        y = F.avg_pool2d(x.permute(0, 3, 1, 2), self.pool_size, 1, self.pool_size // 2,
                         count_include_pad=False)
        return y.permute(0, 2, 3, 1) - x


@pytest.fixture(autouse=True)
def avgpool_registered():
    """Register the toy mixer for one test, then remove it (other tests list the names)."""
    TOKEN_MIXERS.register_module('avgpool', force=True, module=AveragePoolMixer)
    yield
    unregister_mixer('avgpool')


def test_custom_mixer_trains_in_every_block_design():
    arch = dict(depths=(1, 1, 2, 1), dims=(16, 32, 64, 128))
    for block_type in ('unified', 'convnext', 'bottleneck'):
        model = UnifiedBackbone('avgpool', arch, block_type=block_type, stm_cfg=dict(pool_size=5),
                                out_indices=(0, 1, 2, 3))
        outs = model(torch.randn(2, 3, 50, 70))
        assert [o.shape[1] for o in outs] == [16, 32, 64, 128]
        sum(o.mean() for o in outs).backward()


def test_custom_mixer_in_an_mmpretrain_classifier():
    from mmpretrain.registry import MODELS
    model = MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='UnifiedBackbone', stm='avgpool',
                      arch=dict(depths=(1, 1, 1, 1), dims=(16, 32, 64, 128))),
        neck=dict(type='ExtraTransformNeck', in_channels=128),
        head=dict(type='LinearClsHead', num_classes=5, in_channels=192)))
    assert model(torch.randn(2, 3, 64, 64), mode='tensor').shape == (2, 5)
