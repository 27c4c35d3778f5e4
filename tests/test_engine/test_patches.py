"""``import stm_mm`` changes nothing global; ``stm_mm.patches.install()`` is the one change, made
by the tools, ``ReliableRunner`` and the building of a ``UnifiedBackbone``; the private MMEngine
names stm_mm still uses exist (an MMEngine upgrade that changes one fails here, by name)."""
import inspect
import subprocess
import sys

import mmengine
import pytest
import torch
from mmengine.hooks import EMAHook
from mmengine.logging import HistoryBuffer

from stm_mm import patches
from stm_mm.engine.loading import KeyMismatch

from ..helpers.tiny_training import ROOT

# a plain `import stm_mm`, then a config-driven MMEngine Runner (not ReliableRunner) that only
# names stm_mm in custom_imports: building its UnifiedBackbone installs the safe loader before
# the Runner reads `load_from`
PLAIN_IMPORT = r'''
import os, sys
import torch
import mmengine.runner.checkpoint as mm
from mmengine.logging import HistoryBuffer
from mmengine.runner import CheckpointLoader
schemes, local, http = dict(CheckpointLoader._schemes), mm.load_from_local, mm.load_from_http
import stm_mm
assert dict(CheckpointLoader._schemes) == schemes, 'import stm_mm changed the loader schemes'
assert (mm.load_from_local, mm.load_from_http) == (local, http), 'import stm_mm patched loaders'
assert HistoryBuffer not in torch.serialization.get_safe_globals(), 'torch safe globals changed'
assert 'mmpretrain.apis' not in sys.modules, 'import stm_mm imported mmpretrain.apis'
import mmpretrain
assert len(mmpretrain.list_models('u-*')) == 20, mmpretrain.list_models('u-*')

class Payload:
    def __reduce__(self):
        return os.system, (f'touch {sys.argv[2]}', )

evil = os.path.join(sys.argv[1], 'evil.pth')
torch.save({'state_dict': {}, 'x': Payload()}, evil)
from mmengine.config import Config
from mmengine.runner import Runner
cfg = Config(dict(
    default_scope='mmpretrain', custom_imports=dict(imports=['stm_mm']),
    work_dir=sys.argv[1], load_from=evil, model=dict(
        type='ImageClassifier', neck=dict(type='GlobalAveragePooling'),
        backbone=dict(type='UnifiedBackbone', stm='dwconv',
                      arch=dict(depths=(1, 1, 1, 1), dims=(8, 16, 32, 64))),
        head=dict(type='LinearClsHead', num_classes=2, in_channels=64))))
runner = Runner.from_cfg(cfg)
try:
    runner.load_or_resume()
except Exception as e:
    print(type(e).__name__, str(e).splitlines()[0])
'''


def test_import_changes_nothing_and_configs_still_read_safely(tmp_path):
    marker = tmp_path / 'RAN'
    proc = subprocess.run([sys.executable, '-c', PLAIN_IMPORT, str(tmp_path), str(marker)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    refusal = proc.stdout.splitlines()[-1]
    assert refusal.startswith('UnsafeCheckpointError checkpoint '), proc.stdout[-3000:]
    assert 'it was not loaded' in refusal and not marker.exists()


def test_install_is_idempotent():
    import mmengine.runner.checkpoint as mm
    from mmengine.runner import CheckpointLoader
    for _ in range(2):
        patches.install()
        assert CheckpointLoader._get_checkpoint_loader('/a/file.pth') is patches._LOCAL
        assert CheckpointLoader._get_checkpoint_loader('https://x/y.pth') is patches._HTTP
        assert mm.load_from_local is patches._load_from_local
        assert mm.load_from_http is patches._load_from_http


@pytest.fixture(scope='module')
def bare_runner(tmp_path_factory):
    """A Runner with a model and nothing else (what the private attributes belong to)."""
    from mmengine.runner import Runner
    return Runner(model=torch.nn.Linear(2, 2), work_dir=str(tmp_path_factory.mktemp('run')))


@pytest.mark.parametrize('name', sorted(patches.PRIVATE_NAMES))
def test_private_mmengine_names_still_exist(name, bare_runner):
    owner, attr = name.split('.')
    holder = {'Runner': bare_runner, 'EMAHook': EMAHook, 'HistoryBuffer': HistoryBuffer}[owner]
    message = (f'MMEngine {mmengine.__version__} has no {name} any more, which stm_mm uses '
               f'({patches.PRIVATE_NAMES[name]}); fix: adapt stm_mm/patches.py')
    assert hasattr(holder, attr), message
    if name == 'EMAHook._swap_ema_parameters':
        assert list(inspect.signature(EMAHook._swap_ema_parameters).parameters) == ['self'], \
            message
    if name == 'HistoryBuffer._statistics_methods':
        assert isinstance(HistoryBuffer._statistics_methods, dict), message


def test_key_mismatch_is_structured():
    own = {'a': torch.zeros(2), 'b': torch.zeros(3), 'c': torch.zeros(1)}
    found = KeyMismatch.between(own, {'a': torch.zeros(2), 'b': torch.zeros(4),
                                      'd': torch.zeros(1)})
    assert (found.missing, found.unexpected, found.misshaped, found.common) == \
        (['c'], ['d'], [('b', (4, ), (3, ))], 2)
    assert not found.fits
    assert found.describe() == ('1 missing: c; 1 unexpected: d; 1 mis-shaped: b: checkpoint '
                                '(4,) vs model (3,)')
    assert KeyMismatch.between(own, own).fits
