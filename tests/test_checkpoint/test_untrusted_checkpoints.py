"""Checkpoints are untrusted input: no entry point runs code stored in one (issue 18).

Each payload is a real attack (the same file run with ``STM_MM_UNSAFE_LOAD=1`` creates the marker
file); every entry point that reads checkpoints refuses it with one line naming the object, and
the marker is never created. Files shaped like the authors' releases and MMEngine's checkpoints
load without the flag.
"""
import argparse
import os
import os.path as osp
import runpy
import shutil
import subprocess
import zipfile

import pytest
import torch

from stm_mm.checkpoint_io import load_checkpoint, save_checkpoint
from stm_mm.errors import CorruptCheckpointError, NotACheckpointError, UnsafeCheckpointError
from stm_mm.patches import install

from ..helpers.tiny_training import ROOT, dump_cfg, tiny_cfg
from ..test_tools.test_train_errors import cli  # noqa: F401  (fixture: tools/train.py as a module)
from ..helpers.fork_python import python

CONVERTERS = osp.join(ROOT, 'tools', 'model_converters')
FIX = ('fix: only if you trust the file, pass --unsafe-load (library use: STM_MM_UNSAFE_LOAD=1), '
       'or ask its source for a .safetensors file')


class Call:
    """Pickles as ``func(*args)``: what an attacker writes into a checkpoint."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args

    def __call__(self, *args):
        raise AssertionError('only pickled')


def touch(marker):
    return Call(os.system, f'touch {marker}')


def getattr_chain(marker):
    """``HistoryBuffer.__init__.__globals__['__builtins__']['exec'](...)``: reaches code through
    attribute lookups on an allow-listed class only."""
    from mmengine.logging import HistoryBuffer
    init_globals = Call(getattr, Call(getattr, HistoryBuffer, '__init__'), '__globals__')
    builtins_dict = Call(Call(getattr, init_globals, 'get'), '__builtins__')
    run = Call(Call(getattr, builtins_dict, 'get'), 'exec')
    return Call(run, f'open({str(marker)!r}, "w").close()')


AUTHORS_KEYS = {'downsample_layers.0.stem.0.weight': torch.zeros(2),
                'stages.0.0.gamma1': torch.zeros(2)}
PAYLOADS = {  # name -> (checkpoint with the payload, the object the error names)
    'top_level': (lambda m: {'model': AUTHORS_KEYS, 'args': touch(m)}, 'posix.system'),
    'optimizer': (lambda m: {'model': AUTHORS_KEYS, 'optimizer': {
        'state': {0: {'exp_avg': touch(m)}}, 'param_groups': [{'lr': 0.1, 'params': [0]}]}},
        'posix.system'),
    'meta': (lambda m: {'state_dict': {'backbone.stem.0.weight': torch.zeros(2)},
                        'meta': {'cfg': touch(m)}}, 'posix.system'),
    'model_ema': (lambda m: {'model': AUTHORS_KEYS, 'model_ema': {'head.weight': touch(m)}},
                  'posix.system'),
    'getattr_chain': (lambda m: {'model': AUTHORS_KEYS, 'args': getattr_chain(m)},
                      "getattr(HistoryBuffer, '__init__')"),
}


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / 'MARKER'
    yield path
    assert not path.exists(), 'code from a checkpoint ran'


@pytest.fixture(autouse=True)
def _no_unsafe_env(monkeypatch):
    monkeypatch.delenv('STM_MM_UNSAFE_LOAD', raising=False)


def evil(tmp_path, marker, kind='top_level'):
    path = str(tmp_path / f'EVIL_{kind}.pth')
    torch.save(PAYLOADS[kind][0](marker), path)
    return path


def refusal(path, kind='top_level'):
    return (f'checkpoint {path} contains Python objects that loading would execute '
            f'({PAYLOADS[kind][1]}); it was not loaded; {FIX}')


def one_error_line(text):
    lines = [ln for ln in text.splitlines() if ln.startswith('error: ')]
    assert len(lines) == 1, text
    assert 'Traceback' not in text, text
    return lines[0][len('error: '):]


# ----------------------------------------------------------------------------- the payloads
@pytest.mark.parametrize('kind', sorted(PAYLOADS))
def test_payload_runs_only_with_unsafe_load(kind, tmp_path, monkeypatch):
    """The safe loader refuses it; STM_MM_UNSAFE_LOAD=1 (--unsafe-load) runs it, with a warning
    naming the file: the payload is real."""
    path = evil(tmp_path, tmp_path / 'RAN', kind)
    with pytest.raises(UnsafeCheckpointError) as info:
        load_checkpoint(path)
    assert str(info.value) == refusal(path, kind)
    assert not (tmp_path / 'RAN').exists()
    monkeypatch.setenv('STM_MM_UNSAFE_LOAD', '1')
    load_checkpoint(path)
    assert (tmp_path / 'RAN').exists()


@pytest.mark.parametrize('kind', sorted(PAYLOADS))
def test_library_loaders_refuse(kind, tmp_path, marker):
    """stm_mm.apis.init_model, MMEngine's own loaders (load_from, resume,
    init_cfg Pretrained, mmdet's init_detector go through them) and mmpretrain's
    ``get_model(..., pretrained=)`` (the model zoo's converting loader) all use the safe loader
    once ``stm_mm.patches.install()`` ran (the tools and ``ReliableRunner`` run it)."""
    import mmpretrain
    from mmengine.runner.checkpoint import _load_checkpoint, load_checkpoint as mm_load

    from stm_mm.apis import init_model
    install()
    path = evil(tmp_path, marker, kind)
    config = osp.join(ROOT, 'configs/_base_/models/u_dwconv_micro.py')
    for read in (lambda p: init_model(config, p, device='meta'), _load_checkpoint,
                 lambda p: mm_load(torch.nn.Linear(2, 2), p),
                 lambda p: mmpretrain.get_model('u-dwconv-micro_in1k', pretrained=p)):
        with pytest.raises(UnsafeCheckpointError, match='it was not loaded'):
            read(path)


def test_url_checkpoints_go_through_the_safe_loader(tmp_path, marker, monkeypatch):
    """http(s):// (and torchvision://, open-mmlab://, mmcls://, which resolve to URLs): torch's
    load_state_dict_from_url would unpickle fully; the download is read safely instead."""
    import torch.hub
    from mmengine.runner.checkpoint import _load_checkpoint
    install()
    path = evil(tmp_path, marker)
    monkeypatch.setattr(torch.hub, 'download_url_to_file',
                        lambda url, dst, progress=False: shutil.copy(path, dst))
    monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(tmp_path / 'hub'))
    with pytest.raises(UnsafeCheckpointError, match=r'EVIL_top_level\.pth contains Python'):
        _load_checkpoint('https://example.invalid/EVIL_top_level.pth')


# ----------------------------------------------------------------------------- the tools
@pytest.mark.parametrize('tool, extra', [
    ('official_to_stm_mm.py', []),
    ('official_to_stm_mm.py', ['--reverse']),
    ('cls2det.py', []),
    ('cls2det.py', ['--reverse']),
    ('mmdet2_to_stm_mm.py', []),
])
def test_converters_refuse_in_one_line(tool, extra, tmp_path, marker, capsys):
    main = runpy.run_path(osp.join(CONVERTERS, tool))['main']
    for kind in ('top_level', 'getattr_chain'):
        path = evil(tmp_path, marker, kind)
        dst = tmp_path / 'out.pth'
        with pytest.raises(SystemExit) as info:
            main([path, str(dst), *extra])
        assert info.value.code == 2
        assert one_error_line(capsys.readouterr().err) == refusal(path, kind)
        assert not dst.exists()


@pytest.mark.parametrize('tool', ['official_to_stm_mm.py', 'cls2det.py'])
def test_converter_cli_process(tool, tmp_path, marker):
    """The attack of issue 18 as a user runs it (one process per converter)."""
    path = evil(tmp_path, marker)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
    proc = subprocess.run([python(), osp.join(CONVERTERS, tool), path,
                           str(tmp_path / 'out.pth')], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert one_error_line(proc.stderr) == refusal(path)
    assert not (tmp_path / 'out.pth').exists()


def test_converters_refuse_files_without_backbone_weights(tmp_path, capsys):
    """A (safe) file without the expected weights is an error, not a near-empty output."""
    path = str(tmp_path / 'other.pth')
    torch.save({'model': {}, 'state_dict': {'fc.weight': torch.zeros(2)}}, path)
    for tool, message in (('official_to_stm_mm.py', 'holds no classification backbone weights'),
                          ('cls2det.py', 'holds no classification backbone weights'),
                          ('mmdet2_to_stm_mm.py', "Unrecognised key in the mmdet 2.x")):
        main = runpy.run_path(osp.join(CONVERTERS, tool))['main']
        with pytest.raises(SystemExit):
            main([path, str(tmp_path / 'out.pth')])
        assert message in one_error_line(capsys.readouterr().err)
        assert not (tmp_path / 'out.pth').exists()


@pytest.mark.parametrize('how', ['load_from', 'resume', 'init_cfg', 'init_cfg_classifier'])
def test_train_refuses_in_one_line(how, cli, image_folder, tmp_path, marker, capsys):
    path = evil(tmp_path, marker, 'meta' if how == 'resume' else 'model_ema')
    cfg = dump_cfg(tiny_cfg(image_folder, str(tmp_path / 'work'), max_iters=1),
                   str(tmp_path / 'cfg.py'))
    argv = {'load_from': ['--load-from', path], 'resume': ['--resume', path],
            'init_cfg': ['--cfg-options', f'model.backbone.init_cfg.checkpoint={path}',
                         'model.backbone.init_cfg.type=Pretrained'],
            'init_cfg_classifier': ['--cfg-options', f'model.backbone.init_cfg.checkpoint={path}',
                                    'model.backbone.init_cfg.type=PretrainedClassifier']}[how]
    with pytest.raises(SystemExit) as info:
        cli.main([cfg, *argv])
    assert info.value.code == 2
    message = one_error_line(capsys.readouterr().err)
    assert refusal(path, 'meta' if how == 'resume' else 'model_ema') in message, message
    assert not osp.exists(str(tmp_path / 'work' / 'iter_1.pth'))


def test_test_py_refuses(image_folder, tmp_path, marker):
    """tools/test.py CONFIG EVIL.pth: the message names the forbidden object (it said
    'truncated or corrupt' before)."""
    path = evil(tmp_path, marker)
    cfg = tiny_cfg(image_folder, str(tmp_path / 'work'), max_iters=1, val_interval=1)
    cfg.test_dataloader, cfg.test_cfg, cfg.test_evaluator = (
        cfg.val_dataloader, cfg.val_cfg, cfg.val_evaluator)
    config = dump_cfg(cfg, str(tmp_path / 'cfg.py'))
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
    proc = subprocess.run([python(), osp.join(ROOT, 'tools', 'test.py'), config, path],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert one_error_line(proc.stderr) == refusal(path)


def test_analysis_tools_refuse(tmp_path, marker):
    from stm_mm.analysis.loaded_model import load_model
    path = evil(tmp_path, marker)
    with pytest.raises(UnsafeCheckpointError, match='it was not loaded'):
        load_model(osp.join(ROOT, 'configs/cls/digits/u_dwconv_micro_digits.py'), path)


# ----------------------------------------------------------------------------- honest errors
def _write(path, data):
    with open(path, 'wb') as f:
        f.write(data)
    return str(path)


def test_corrupt_and_non_checkpoints_are_told_apart(tmp_path):
    good = str(tmp_path / 'good.pth')
    torch.save({'state_dict': {'w': torch.zeros(1000)}}, good)
    with open(good, 'rb') as f:
        data = f.read()
    cases = [
        (_write(tmp_path / 'half.pth', data[:len(data) // 2]), CorruptCheckpointError,
         'cannot be read ({} bytes): it is truncated or corrupt'.format(len(data) // 2)),
        (_write(tmp_path / 'empty.pth', b''), CorruptCheckpointError, 'is empty (0 bytes)'),
        (_write(tmp_path / 'notes.pth', b'just some text\n'), NotACheckpointError,
         "is not a checkpoint (15 bytes starting with b'just'"),
    ]
    with zipfile.ZipFile(tmp_path / 'archive.pth', 'w') as z:
        z.writestr('readme.txt', 'hello')
    cases.append((str(tmp_path / 'archive.pth'), NotACheckpointError,
                  'is a zip archive but not a PyTorch checkpoint'))
    save_checkpoint({'state_dict': {'w': torch.zeros(1000)}}, tmp_path / 'w.safetensors')
    with open(tmp_path / 'w.safetensors', 'rb') as f:
        st = f.read()
    cases.append((_write(tmp_path / 'half.safetensors', st[:len(st) - 100]),
                  CorruptCheckpointError, 'cannot be read as safetensors'))
    cases.append((_write(tmp_path / 'inst.pth', b'\x80\x02(ios\nsystem\n.'),
                  UnsafeCheckpointError, 'is a plain pickle (protocol 2, not torch.save\'s '
                  'format) with Python objects that loading would execute (os.system); it was '
                  'not loaded'))
    cases.append((_write(tmp_path / 'garbage.pth', b'\x80\x02garbage' * 10),
                  CorruptCheckpointError, 'truncated or corrupt [UnpicklingError: Unsupported '
                  'operand 103]'))
    for path, error, text in cases:
        with pytest.raises(error) as info:
            load_checkpoint(path)
        assert text in str(info.value), str(info.value)
        assert len(str(info.value).splitlines()) == 1


# ----------------------------------------------------------------------------- what must load
def authors_release_file(path):
    """Shaped like the authors' training checkpoints: args (Namespace), model, model_ema,
    optimizer (AdamW state), epoch, scaler (GradScaler state)."""
    from ..test_checkpoint.test_official_classification import official_state_dict
    model = official_state_dict('dwconv', 'micro')
    params = [torch.nn.Parameter(torch.randn(3, 2)), torch.nn.Parameter(torch.randn(3))]
    optimizer = torch.optim.AdamW(params, lr=4e-3, weight_decay=0.05)
    sum(p.sum() for p in params).backward()
    optimizer.step()
    args = argparse.Namespace(model='unified_convnext_micro', batch_size=512, lr=4e-3,
                              drop_path=0.1, model_ema=True, model_ema_decay=0.9999,
                              input_size=224, color_jitter=0.4, aa='rand-m9-mstd0.5-inc1',
                              data_path='/data/imagenet', resume='', dist_url='env://',
                              crop_pct=None, layer_decay=None, distributed=True, world_size=8,
                              head_init_scale=1.0, update_freq=1, disable_eval=False)
    torch.save({'model': model, 'model_ema': {k: v.clone() for k, v in model.items()},
                'optimizer': optimizer.state_dict(), 'epoch': 299,
                'scaler': {'scale': 65536.0, 'growth_factor': 2.0, 'backoff_factor': 0.5,
                           'growth_interval': 2000, '_growth_tracker': 17},
                'args': args}, path)
    return model


def test_authors_release_and_mmengine_files_load_without_the_flag(tmp_path, capsys):
    from mmengine.logging import MessageHub
    import numpy as np
    path = str(tmp_path / 'unified_convnext_micro.pth')
    model = authors_release_file(path)
    checkpoint = load_checkpoint(path)
    assert checkpoint['args'].model == 'unified_convnext_micro' and checkpoint['epoch'] == 299
    assert all(torch.equal(checkpoint['model'][k], v) for k, v in model.items())
    main = runpy.run_path(osp.join(CONVERTERS, 'official_to_stm_mm.py'))['main']
    main([path, str(tmp_path / 'ours.safetensors')])
    ours = load_checkpoint(str(tmp_path / 'ours.safetensors'))
    assert ours['meta']['weights'] == 'raw' and ours['meta']['source_epoch'] == 299
    assert torch.equal(ours['state_dict']['head.fc.weight'], model['head.weight'])
    # MMEngine's message hub (HistoryBuffer with its statistics methods, numpy scalars)
    hub = MessageHub.get_instance('untrusted_checkpoints_test')
    hub.update_scalar('train/loss', 1.5)
    hub.update_info('iter', np.int64(4))
    torch.save({'state_dict': {}, 'message_hub': hub.state_dict()}, tmp_path / 'mm.pth')
    loaded = load_checkpoint(str(tmp_path / 'mm.pth'))['message_hub']
    assert loaded['log_scalars']['train/loss'].mean() == 1.5
    assert loaded['runtime_info']['iter'] == 4


def test_train_loads_safetensors(cli, image_folder, tmp_path):
    """load_from and init_cfg Pretrained read .safetensors (weights only by construction)."""
    from mmpretrain.registry import MODELS
    cfg = tiny_cfg(image_folder, str(tmp_path / 'work'), max_iters=1)
    model = MODELS.build(cfg.model)
    path = str(tmp_path / 'weights.safetensors')
    save_checkpoint({'state_dict': model.state_dict(), 'meta': {'note': 'test'}}, path)
    config = dump_cfg(cfg, str(tmp_path / 'cfg.py'))
    cli.main([config, '--load-from', path])
    init = 'model.backbone.init_cfg'
    cli.main([config, '--work-dir', str(tmp_path / 'work2'), '--cfg-options',
              f'{init}.checkpoint={path}', f'{init}.type=Pretrained', f'{init}.prefix=backbone.'])
    for work in ('work', 'work2'):
        assert osp.isfile(str(tmp_path / work / 'iter_1.pth'))
