"""A sixth mixer is one class and one spec (docs/add_mixer.md): everything below works on a mixer
defined in this file only, registered for these tests and removed afterwards."""
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from stm_mm.analysis.complexity import complexity
from stm_mm.analysis.erf import erf_maps, erf_side
from stm_mm.analysis.mixer_benchmark import MIXER_IMPLS, stage_cases, time_mixer
from stm_mm.converters import official_to_stm_mm, stm_from_keys, stm_mm_to_official
from stm_mm.deployment import export_onnx, verify_onnx
from stm_mm.models import ARCH_ZOO, UnifiedBackbone
from stm_mm.models.arch_zoo import arch
from stm_mm.models.mixers import (MixerSpec, TokenMixer, mixer_spec, mixer_specs,
                                  register_mixer, unregister_mixer)


class PoolProjectMixer(TokenMixer):
    """``pool_proj(avg_pool_kxk(x))``, padding not counted in the averages.

    Shapes: ``(B, H, W, C)`` -> ``(B, H, W, C)``.
    """

    def __init__(self, dim, num_heads=None, stage_index=0, block_index=0, pool_size=3):
        super().__init__()
        self.pool_size = pool_size
        self.pool_proj = nn.Linear(dim, dim)

    def forward(self, x):
        y = F.avg_pool2d(x.permute(0, 3, 1, 2), self.pool_size, 1, self.pool_size // 2,
                         count_include_pad=False)
        return self.pool_proj(y.permute(0, 2, 3, 1))


NAME = 'avgpool_proj'
SPEC = MixerSpec(
    name=NAME, label='U-AvgPool', signature='mixer.pool_proj.', flops='paper_local',
    keys=(('token_mixer.proj.', 'mixer.pool_proj.'), ),  # a PoolFormer-style authors' name
    presets=dict(micro=arch((1, 1, 2, 1), (16, 32, 64, 128))))


@pytest.fixture(autouse=True)
def registered():
    register_mixer(SPEC)(PoolProjectMixer)
    yield
    unregister_mixer(NAME)


def backbone(**kwargs):
    torch.manual_seed(0)
    return UnifiedBackbone(NAME, 'micro', layer_scale_init_value=1.0, out_indices=(0, 1, 2, 3),
                           **kwargs).eval()


def test_registry_lists_it_and_builds_it():
    assert mixer_spec(NAME) is SPEC and list(mixer_specs())[-1] == NAME
    assert ARCH_ZOO[NAME]['micro']['dims'] == (16, 32, 64, 128)
    assert NAME not in MIXER_IMPLS  # one implementation
    model = UnifiedBackbone(NAME, 'micro', out_indices=(0, 1, 2, 3))
    outs = model(torch.randn(2, 3, 50, 70))
    assert [tuple(o.shape) for o in outs] == [(2, 16, 13, 18), (2, 32, 7, 9), (2, 64, 4, 5),
                                              (2, 128, 2, 3)]
    sum(o.mean() for o in outs).backward()
    assert model.stages[0].blocks[0].mixer.pool_proj.weight.grad is not None


def test_keys_to_the_authors_layout_and_back():
    ours = {f'backbone.{k}': v for k, v in backbone().state_dict().items()}
    theirs = stm_mm_to_official(ours, NAME)
    assert 'stages.2.1.token_mixer.proj.weight' in theirs
    assert 'stages.2.1.gamma_1' in theirs and 'downsample_layers.0.stem.0.weight' in theirs
    assert stm_from_keys(theirs) == NAME and stm_from_keys(ours) == NAME
    back = official_to_stm_mm(theirs)
    assert list(back) == list(ours)
    for key, value in ours.items():
        assert torch.equal(back[key], value), key


def test_flops_count_its_projection():
    model = backbone()
    macs = []
    hooks = [m.register_forward_hook(
        lambda m, i, o: macs.append(i[0].numel() // m.in_features * m.in_features *
                                    m.out_features))
        for m in model.modules() if isinstance(m, nn.Linear)]
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64))
    for hook in hooks:
        hook.remove()
    counts = complexity(model, (1, 3, 64, 64))
    assert counts['linear'] == sum(macs)
    assert counts[SPEC.flops] > counts['linear']  # the convention get_flops reports


def test_erf_grows_by_the_pooling_window():
    """Stage 0's centre unit sees the stem's 7x7 pixels widened by one 3x3 pool at stride 4."""
    images = torch.randn(2, 3, 48, 48, generator=torch.Generator().manual_seed(0))
    maps, count = erf_maps(backbone(), [images], relu=False)
    assert maps.shape == (4, 48, 48) and count == 2
    rows, cols = np.nonzero(maps[0])
    assert rows.max() - rows.min() + 1 == 15 and cols.max() - cols.min() + 1 == 15
    assert erf_side(maps[0], 0.99) <= 15


def test_mixer_benchmark_times_it():
    case = stage_cases(NAME, 'micro', batch_size=1, input_size=(32, 32))[0]
    rows = time_mixer(case, (None, ), warmup=0, iters=1)
    assert len(rows) == 1 and rows[0]['stm'] == NAME and rows[0]['max_abs_diff'] == 0


def test_onnx_export_matches_pytorch(tmp_path):
    model = backbone()
    names = [f'feat{i}' for i in range(4)]
    export_onnx(model, tmp_path / 'pool.onnx', names, (1, 3, 32, 32), dynamic=True)
    results = verify_onnx(model, tmp_path / 'pool.onnx', [(1, 3, 32, 32), (2, 3, 40, 56)])
    for shape, diff, scale in results:
        assert scale > 1 and diff <= 1e-4, (shape, diff, scale)
