"""tools/dist_train.sh CONFIG 2: two CPU processes (gloo) train and evaluate a digits model.

About 10 s on an idle 2-core machine, so not marked slow.
"""
import os
import os.path as osp
import re
import socket
import subprocess


from .. import ROOT
from ..helpers.digits import data_options
from ..helpers.fork_python import python


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_dist_train_two_processes(tiny_digits, tmp_path):
    work_dir = str(tmp_path / 'work')
    # 20 train images, 5 per process and iteration: 2 iterations per epoch with 2 processes
    # (a single process would need 4)
    options = data_options(tiny_digits, 5, **{
        'train_cfg.max_epochs': 2,
        'train_cfg.val_interval': 2,
        'default_hooks.logger.interval': 1,
    })
    cmd = [osp.join(ROOT, 'tools', 'dist_train.sh'),
           osp.join(ROOT, 'configs', 'cls', 'digits', 'u_dwconv_micro_digits.py'), '2',
           '--work-dir', work_dir, '--cfg-options'] + [f'{k}={v}' for k, v in options.items()]
    env = dict(os.environ, PORT=str(_free_port()), OMP_NUM_THREADS='1', PYTHON=python())
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-5000:]

    # rank 0 reports a 2-process world (MMEngine logs the world size as "GPU number") and the
    # distributed sampler gave each process half of the data
    assert re.search(r'Distributed training: True', output), output[-3000:]
    assert re.search(r'GPU number: 2\b', output), output[-3000:]
    assert re.search(r'Epoch\(train\)\s+\[2\]\[2/2\]', output), output[-3000:]
    assert 'accuracy/top1' in output
    assert osp.isfile(osp.join(work_dir, 'epoch_2.pth'))
