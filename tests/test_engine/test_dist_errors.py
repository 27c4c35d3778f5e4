"""Errors of 2-process gloo jobs started with tools/dist_train.sh: one line from the failed rank,
its exit code, no torchrun dump (issue 15); an unreadable image skipped across ranks (issue 17)."""
import os
import os.path as osp
import shutil
import socket
import subprocess

import pytest

from ..helpers.fork_python import python
from ..helpers.tiny_training import ROOT, dump_cfg, tiny_cfg

DIST_TRAIN = osp.join(ROOT, 'tools', 'dist_train.sh')


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def dist_train(args, cwd=ROOT):
    env = dict(os.environ, PORT=str(_free_port()), OMP_NUM_THREADS='1', PYTHON=python(),
               PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
    return subprocess.run([DIST_TRAIN, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def assert_one_line(proc, code=2):
    output = proc.stdout + proc.stderr
    assert proc.returncode == code, output[-4000:]
    errors = [ln for ln in output.splitlines() if ln.startswith('error: ')]
    assert len(errors) == 1, output[-4000:]
    for noise in ('Traceback', 'ChildFailedError', 'Root Cause', 'failed (exitcode'):
        assert noise not in output, output[-4000:]
    return errors[0][len('error: '):]


@pytest.mark.slow
def test_unreadable_image_in_two_process_job(image_folder, tmp_path):
    root = str(tmp_path / 'data')
    shutil.copytree(image_folder, root)
    bad = osp.join(root, 'train', 'a', '004.png')
    with open(bad, 'wb') as f:
        f.write(b'not an image')
    cfg = dump_cfg(tiny_cfg(root, str(tmp_path / 'work'), max_iters=4, ckpt_interval=4,
                            train_dataloader=dict(batch_size=2)), str(tmp_path / 'cfg.py'))
    message = assert_one_line(dist_train([cfg, '2']))
    assert message.startswith(f'image {bad} cannot be decoded: not an image file'), message

    # skipped: both ranks read it (4 iterations x 2 ranks x 2 images = every image once),
    # it is listed once
    proc = dist_train([cfg, '2', '--skip-invalid', '--cfg-options',
                       'reliability.max_unreadable=0.1'])
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    with open(str(tmp_path / 'work' / 'skipped_images.txt')) as f:
        assert f.read().splitlines() == [
            f"train\t{bad}\tnot an image file (content starts with b'not an image')"]


@pytest.mark.slow
def test_missing_coco_is_reported_once(tmp_path):
    """Issue 15: a Mask R-CNN config without COCO on 2 processes."""
    cfg = osp.join(ROOT, 'configs', 'det', 'u_dwconv_micro_maskrcnn.py')
    message = assert_one_line(dist_train([cfg, '2', '--work-dir', str(tmp_path / 'work')],
                                         cwd=str(tmp_path)))
    assert message.startswith('train dataset: COCO annotation file not found: '
                              'data/coco/annotations/instances_train2017.json; fix: put COCO '
                              '2017 under data/coco/'), message
    assert 'see docs/detection.md' in message and 'data_root=' in message
