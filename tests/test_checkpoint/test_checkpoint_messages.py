"""Every tool that reads a checkpoint reports a refused, truncated or plain-pickle file as one
``error:`` line with exit 2, the message calls a refused file refused (auto-resume included),
and every ``--option`` a message suggests exists in that tool."""
import os
import os.path as osp
import pickle
import re

import pytest
import torch

from stm_mm.checkpoint_io import load_checkpoint
from stm_mm.engine import apply_cli_options, build_runner
from stm_mm.errors import CheckpointError, CorruptCheckpointError, UnsafeCheckpointError

from ..helpers.tiny_training import ROOT, dump_cfg, expect_one_error, load_tool, tiny_cfg
from .test_untrusted_checkpoints import FIX, evil, marker, touch  # noqa: F401  (fixture)

CLS_CONFIG = osp.join(ROOT, 'configs/cls/digits/u_dwconv_micro_digits.py')
DET_CONFIG = osp.join(ROOT, 'configs/det/digit_scenes/u_dwconv_micro_maskrcnn_digits.py')


@pytest.fixture(autouse=True)
def _no_unsafe_env(monkeypatch):
    monkeypatch.delenv('STM_MM_UNSAFE_LOAD', raising=False)


def _tool_argv(tool, ckpt, tmp_path, image_folder):
    image = osp.join(image_folder, 'val', 'a', '000.png')
    out = str(tmp_path / 'out')
    if tool in ('train.py', 'test.py'):
        cfg = tiny_cfg(image_folder, str(tmp_path / 'work'), max_iters=1, val_interval=1)
        cfg.test_dataloader, cfg.test_cfg, cfg.test_evaluator = (
            cfg.val_dataloader, cfg.val_cfg, cfg.val_evaluator)
        config = dump_cfg(cfg, str(tmp_path / 'cfg.py'))
        return [config, '--load-from', ckpt] if tool == 'train.py' else [config, ckpt]
    return {
        'analysis_tools/erf.py': [CLS_CONFIG, ckpt, '--out-dir', out],
        'analysis_tools/invariance.py': ['cls', CLS_CONFIG, ckpt, '--out-dir', out],
        'demo/image_demo.py': [image, CLS_CONFIG, ckpt],
        'demo/det_image_demo.py': [image, DET_CONFIG, ckpt, '--out', out + '.png'],
        'deployment/pytorch2onnx.py': [CLS_CONFIG, ckpt, '--out', out + '.onnx'],
        'model_converters/official_to_stm_mm.py': [ckpt, out + '.pth'],
        'model_converters/cls2det.py': [ckpt, out + '.pth'],
        'model_converters/mmdet2_to_stm_mm.py': [ckpt, out + '.pth'],
    }[tool]


TOOLS = ['train.py', 'test.py', 'analysis_tools/erf.py', 'analysis_tools/invariance.py',
         'demo/image_demo.py', 'deployment/pytorch2onnx.py',
         'model_converters/official_to_stm_mm.py', 'model_converters/cls2det.py',
         'model_converters/mmdet2_to_stm_mm.py',
         'demo/det_image_demo.py']  # last: DetInferencer leaves mmdet as the default scope


@pytest.mark.slow
@pytest.mark.parametrize('tool', TOOLS)
def test_tools_report_in_one_line_and_suggest_only_their_options(
        tool, tmp_path, marker, image_folder, capsys, monkeypatch):
    monkeypatch.syspath_prepend(osp.join(ROOT, 'tools', 'demo'))  # det_image_demo's import
    module = load_tool(osp.join(ROOT, 'tools', tool))
    refused = evil(tmp_path, marker)
    truncated = str(tmp_path / 'truncated.pth')
    torch.save({'state_dict': {'w': torch.zeros(1000)}}, truncated)
    with open(truncated, 'r+b') as f:
        f.truncate(1500)
    help_argv = ['cls', '--help'] if tool.endswith('invariance.py') else ['--help']
    with pytest.raises(SystemExit):
        module.main(help_argv)
    options = set(re.findall(r'--[a-z][a-z-]+', capsys.readouterr().out))
    for ckpt, expected in ((refused, 'it was not loaded'),
                           (truncated, 'it is truncated or corrupt')):
        message = expect_one_error(module.main, capsys,
                                   _tool_argv(tool, ckpt, tmp_path, image_folder))
        assert expected in message and ckpt in message, message
        suggested = set(re.findall(r'--[a-z][a-z-]+', message)) | {'--debug'}
        assert suggested <= options, f'{tool} lacks {suggested - options}: {message}'


def test_plain_pickles_are_refused_not_corrupt(tmp_path, marker):
    """Raw pickles (not torch.save's zip format) of any protocol: refused, object named."""
    for protocol in (0, 2, 5):
        path = str(tmp_path / f'p{protocol}.pkl')
        with open(path, 'wb') as f:
            pickle.dump({'w': touch(marker)}, f, protocol=protocol)
        with pytest.raises(UnsafeCheckpointError) as info:
            load_checkpoint(path)
        assert 'that loading would execute (posix.system); it was not loaded; ' + FIX in str(
            info.value), str(info.value)
    path = str(tmp_path / 'weights5.pkl')
    with open(path, 'wb') as f:
        pickle.dump({'w': [1.0, 2.0]}, f, protocol=5)
    with pytest.raises(UnsafeCheckpointError, match=r'is a plain pickle \(protocol 5, not '
                       r"torch\.save's format\) with pickle opcode FRAME that the safe loader "
                       r'does not read; it was not loaded'):
        load_checkpoint(path)


@pytest.mark.parametrize('meta', ['{"iter": ', '[' * 100000 + ']' * 100000])
def test_malformed_safetensors_metadata_names_the_file(tmp_path, meta):
    from safetensors.torch import save_file
    path = str(tmp_path / 'bad.safetensors')
    save_file({'w': torch.zeros(2)}, path, metadata={'format': 'pt', 'stm_mm_meta': meta})
    with pytest.raises(CorruptCheckpointError, match=f'checkpoint {re.escape(path)}: its '
                       'stm_mm_meta metadata is not valid JSON'):
        load_checkpoint(path)


def test_auto_resume_calls_refused_files_refused(image_folder, copy_of_reference, marker):
    work_dir = copy_of_reference
    newest, older = osp.join(work_dir, 'iter_6.pth'), osp.join(work_dir, 'iter_4.pth')
    torch.save({'meta': {}, 'state_dict': {}, 'x': touch(marker)}, newest)
    with open(older, 'r+b') as f:
        f.truncate(1000)
    os.remove(osp.join(work_dir, 'iter_2.pth'))
    cfg = tiny_cfg(image_folder, work_dir, log_level='WARNING')
    with pytest.raises(CheckpointError) as info:
        build_runner(apply_cli_options(cfg, resume='auto')).train()
    assert str(info.value) == (
        f'no loadable checkpoint in {work_dir} to resume from (1 refused as unsafe: {newest}; '
        f'1 truncated or corrupt: {older}); fix: pass --unsafe-load only if you trust the '
        'refused file(s), or restore a checkpoint or start without --resume')
    os.remove(older)
    with pytest.raises(CheckpointError, match=r'\(all 1 are refused as unsafe: '):
        build_runner(apply_cli_options(cfg, resume='auto')).train()
