"""Bad input is caught before training and reported by tools/train.py as one line
`error: <reason>; fix: ...` (exit code 2), with --debug for the traceback."""
import os.path as osp
import shutil

import pytest
import torch

from ..helpers.tiny_training import (TEST_PY, TRAIN_PY, dump_cfg, expect_one_error, load_tool, run_train,
                     tiny_cfg)


@pytest.fixture(scope='module')
def cli():
    return load_tool(TRAIN_PY)


@pytest.fixture
def config(image_folder, tmp_path):
    def make(**kw):
        kw.setdefault('max_iters', 1)
        kw.setdefault('ckpt_interval', 1)
        return dump_cfg(tiny_cfg(image_folder, str(tmp_path / 'work'), **kw),
                        str(tmp_path / f'cfg_{len(list(tmp_path.glob("cfg_*")))}.py'))
    return make


def run_cli(cli, capsys, argv, code=2):
    return expect_one_error(cli.main, capsys, argv, code)


@pytest.mark.parametrize('option, expected', [
    ('model.backbone.stm=foo', "Unknown spatial token mixer 'foo'; valid names: dcnv3, dwconv, "
     'halo, pvt, swin'),
    ('model.backbone.arch=giant', "Unknown arch 'giant' for stm 'dwconv'; valid presets:"),
    ('model.backbone.arch.widths=[1,2]', "Unknown arch key(s) ['widths']; valid: depths"),
    ('model.backbone.stm_cfg.bogus=1', "stm_cfg key(s) ['bogus'] are not options of"),
    ('reliability.retries=3', "unknown reliability option(s) ['retries']; valid: strict_load"),
])
def test_config_errors_are_one_line(cli, capsys, config, option, expected):
    message = run_cli(cli, capsys, [config(), '--cfg-options', option])
    assert message.startswith(expected), message


def test_missing_config_file(cli, capsys, tmp_path):
    message = run_cli(cli, capsys, [str(tmp_path / 'nope.py')])
    assert 'nope.py' in message


def test_debug_shows_the_traceback(cli, config):
    with pytest.raises(KeyError, match='Unknown spatial token mixer'):
        cli.main([config(), '--debug', '--cfg-options', 'model.backbone.stm=foo'])


def test_input_size_the_model_cannot_take(cli, capsys, config):
    """U-PVT reduces keys/values with an 8x8 stride-8 conv in stage 1: 16x16 images fail."""
    cfg = config(stm='pvt', crop=16)
    message = run_cli(cli, capsys, [cfg, '--cfg-options',
                                    'model.backbone.arch.num_heads=[1,2,4,8]'])
    assert message.startswith('the model cannot take the 16x16 images the train pipeline '
                              'produces [RuntimeError: '), message
    assert message.endswith('fix: make the pipeline produce at least 32x32 images'), message


def test_load_from_corrupt_checkpoint(cli, capsys, config, tmp_path):
    path = str(tmp_path / 'corrupt.pth')
    with open(path, 'wb') as f:
        f.write(b'\x80\x02garbage' * 10)
    message = run_cli(cli, capsys, [config(), '--load-from', path])
    assert message.startswith(f'checkpoint {path} cannot be read (90 bytes): it is truncated '
                              'or corrupt'), message


def test_load_from_missing_checkpoint(cli, capsys, config, tmp_path):
    path = str(tmp_path / 'missing.pth')
    message = run_cli(cli, capsys, [config(), '--load-from', path])
    assert message.startswith(f'checkpoint file not found: {path}'), message


def test_load_from_another_model(cli, capsys, config, reference_run, tmp_path):
    """A 2-class checkpoint loaded into a 3-class model: MMEngine would only warn."""
    ckpt = osp.join(reference_run, 'iter_2.pth')
    cfg = config()
    message = run_cli(cli, capsys, [cfg, '--load-from', ckpt, '--cfg-options',
                                    'model.head.num_classes=3', 'data_preprocessor.num_classes=3'])
    assert message.startswith(f'checkpoint {ckpt} does not fit the model: 2 mis-shaped: '
                              'head.fc.bias: checkpoint (2,) vs model (3,), head.fc.weight: '
                              'checkpoint (2, 64) vs model (3, 64)'), message
    assert '--non-strict-load' in message
    # a deeper stage 3: keys missing
    message = run_cli(cli, capsys, [cfg, '--load-from', ckpt, '--cfg-options',
                                    'model.backbone.arch.depths=[1,1,2,1]'])
    assert message.startswith(f'checkpoint {ckpt} does not fit the model: 16 missing: '
                              'backbone.stages.2.blocks.1.'), message
    # the opt-out: trains (the mismatch is only logged)
    cli.main([cfg, '--load-from', ckpt, '--non-strict-load', '--cfg-options',
              'model.head.num_classes=3', 'data_preprocessor.num_classes=3'])
    assert osp.isfile(str(tmp_path / 'work' / 'iter_1.pth'))


def test_init_cfg_pretrained_of_another_model(cli, capsys, config, reference_run):
    ckpt = osp.join(reference_run, 'iter_2.pth')
    message = run_cli(cli, capsys, [config(), '--cfg-options',
                                    f'model.backbone.init_cfg.checkpoint={ckpt}',
                                    'model.backbone.init_cfg.type=Pretrained',
                                    'model.backbone.init_cfg.prefix=backbone.',
                                    'model.backbone.arch.dims=[16,32,64,128]'])
    assert message.startswith(f'init_cfg Pretrained of backbone: {ckpt} does not fit: '), message
    assert 'mis-shaped' in message


def test_empty_image_folder(cli, capsys, image_folder, tmp_path):
    empty = tmp_path / 'empty'
    (empty / 'train' / 'a').mkdir(parents=True)
    cfg = dump_cfg(tiny_cfg(str(empty), str(tmp_path / 'work')), str(tmp_path / 'e.py'))
    message = run_cli(cli, capsys, [cfg])
    assert message.startswith(f'train dataset: image folder {empty}/train has no images'), message


@pytest.mark.parametrize('env, launcher, expected', [
    (dict(WORLD_SIZE='2', RANK='0'), 'none', 'WORLD_SIZE=2 in the environment but --launcher '
     'none'),
    (dict(WORLD_SIZE='2', RANK='2', LOCAL_RANK='0'), 'pytorch', 'RANK=2 is not in '
     '0..WORLD_SIZE-1 (WORLD_SIZE=2)'),
    (dict(WORLD_SIZE='2', RANK='1', LOCAL_RANK='1', LOCAL_WORLD_SIZE='4'), 'pytorch',
     'LOCAL_WORLD_SIZE=4 (processes on this node) exceeds WORLD_SIZE=2'),
    (dict(WORLD_SIZE='two', RANK='0'), 'pytorch', "WORLD_SIZE='two' in the environment is not "
     'an integer'),
])
def test_inconsistent_distributed_launch(cli, capsys, config, monkeypatch, env, launcher,
                                         expected):
    for key, value in dict(env, MASTER_ADDR='127.0.0.1', MASTER_PORT='29999').items():
        monkeypatch.setenv(key, value)
    message = run_cli(cli, capsys, [config(), '--launcher', launcher])
    assert message.startswith(expected), message
    assert not torch.distributed.is_initialized()


@pytest.mark.slow
def test_cli_subprocess_error_is_one_line(image_folder, tmp_path):
    """The real command line: no 40-line registry traceback, exit status 2."""
    cfg = dump_cfg(tiny_cfg(image_folder, str(tmp_path / 'work')), str(tmp_path / 'c.py'))
    proc = run_train([cfg, '--cfg-options', 'model.backbone.stm=conv9'])
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert 'Traceback' not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith('error: ')]
    assert errors == ["error: Unknown spatial token mixer 'conv9'; valid names: dcnv3, dwconv, "
                      'halo, pvt, swin'], proc.stderr[-2000:]
    shutil.rmtree(str(tmp_path / 'work'), ignore_errors=True)


@pytest.fixture(scope='module')
def test_cli():
    return load_tool(TEST_PY)


def test_test_tool_missing_data_is_one_line(test_cli, capsys, reference_run, tmp_path):
    """Issue 15: tools/test.py reported a missing data folder with a traceback."""
    cfg = tiny_cfg(str(tmp_path / 'nowhere'), str(tmp_path / 'work'), val_interval=2)
    cfg.merge_from_dict(dict(test_dataloader=cfg.val_dataloader, test_cfg=dict(),
                             test_evaluator=cfg.val_evaluator))
    path = dump_cfg(cfg, str(tmp_path / 't.py'))
    message = expect_one_error(test_cli.main, capsys,
                               [path, osp.join(reference_run, 'iter_2.pth')])
    assert message.startswith(f'test dataset: image folder not found: {tmp_path}/nowhere/val; '
                              'fix: set data_root'), message
    assert not (tmp_path / 'work').exists()  # nothing was built


@pytest.mark.parametrize('what', ['missing', 'config file', 'empty'])
def test_test_tool_checks_the_checkpoint_first(test_cli, capsys, tmp_path, what):
    """The checkpoint argument is checked before the config and the data (here: both bad)."""
    ckpt = {'missing': tmp_path / 'nope.pth', 'config file': tmp_path / 'cfg.py',
            'empty': tmp_path / 'empty.pth'}[what]
    if what != 'missing':
        ckpt.write_bytes(b"model = dict(type='X')\n" if what == 'config file' else b'')
    message = expect_one_error(test_cli.main, capsys, [str(tmp_path / 'no_config.py'),
                                                      str(ckpt)])
    expected = {'missing': f'checkpoint file not found: {ckpt}; fix: check the path',
                'config file': f"{ckpt} is not a checkpoint (23 bytes starting with b'mode'",
                'empty': f'checkpoint {ckpt} is empty (0 bytes)'}[what]
    assert message.startswith(expected), message


def test_finite_loss_hook_without_custom_hooks(image_folder, tmp_path):
    """MMEngine registers custom hooks only when the config has a custom_hooks entry."""
    from mmengine.config import Config

    from stm_mm.engine import FiniteLossHook, build_runner
    cfg = tiny_cfg(image_folder, str(tmp_path / 'work'))
    cfg = Config({k: v for k, v in cfg.items() if k != 'custom_hooks'})
    runner = build_runner(cfg)
    assert sum(isinstance(h, FiniteLossHook) for h in runner.hooks) == 1
