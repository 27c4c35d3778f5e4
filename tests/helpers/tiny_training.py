"""Helpers for the fault-injection tests: a tiny image folder, a tiny deterministic classifier
config (micro-ish UnifiedBackbone, iteration-based loop) and ways to run tools/train.py."""
import copy
import glob
import importlib.util
import os
import os.path as osp
import subprocess
import uuid

import numpy as np
import torch

from stm_mm.checkpoint_io import load_checkpoint

from .. import ROOT
from .fork_python import python

TRAIN_PY = osp.join(ROOT, 'tools', 'train.py')
TEST_PY = osp.join(ROOT, 'tools', 'test.py')


def load_tool(path):
    """A tools/*.py script as a module (its ``main(argv)`` runs in this process)."""
    spec = importlib.util.spec_from_file_location(
        'stm_mm_tool_' + osp.splitext(osp.basename(path))[0], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def expect_one_error(main, capsys, argv, code=2):
    """Run ``main(argv)``; it must exit with ``code`` after exactly one ``error:`` line and no
    traceback. Returns the message after ``error: ``."""
    import pytest
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err
    assert info.value.code == code, err[-3000:]
    lines = [ln for ln in err.splitlines() if ln.startswith('error: ')]
    assert len(lines) == 1, err[-3000:]
    assert 'Traceback' not in err
    assert '(run with --debug for the full traceback)' in err
    return lines[0][len('error: '):]


def write_image_folder(root, classes=('a', 'b'), per_class=8, val_per_class=2, size=32, seed=0):
    """``root/train/<class>/*.png`` and ``root/val/<class>/*.png``: random 32x32 images."""
    from PIL import Image
    rng = np.random.default_rng(seed)
    for split, n in (('train', per_class), ('val', val_per_class)):
        for c, name in enumerate(classes):
            d = osp.join(root, split, name)
            os.makedirs(d, exist_ok=True)
            for i in range(n):
                img = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                img[..., c] = 255 - img[..., c] // 4  # a learnable colour cue per class
                Image.fromarray(img).save(osp.join(d, f'{i:03d}.png'))
    return root


def tiny_cfg(data_root, work_dir, max_iters=6, ckpt_interval=2, max_keep_ckpts=1,
             val_interval=None, custom_hooks=(), stm='dwconv', crop=32, **extra):
    """A seeded, deterministic, iteration-based classification run that takes ~0.05 s/iter.

    Random crops (numpy RNG) and drop-path (torch RNG) make the RNG restore on resume matter.
    """
    from mmengine.config import Config
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='RandomResizedCrop', scale=crop, crop_ratio_range=(0.5, 1.0),
             backend='pillow'),
        dict(type='PackInputs'),
    ]
    test_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
    cfg = dict(
        default_scope='mmpretrain',
        custom_imports=dict(imports=['stm_mm', 'tests.helpers.faults'],
                            allow_failed_imports=False),
        model=dict(
            type='ImageClassifier',
            backbone=dict(type='UnifiedBackbone', stm=stm, img_size=crop,
                          arch=dict(depths=(1, 1, 1, 1), dims=(8, 16, 32, 64)),
                          drop_path_rate=0.2),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=2, in_channels=64,
                      loss=dict(type='CrossEntropyLoss'))),
        data_preprocessor=dict(num_classes=2, mean=[127.5] * 3, std=[127.5] * 3, to_rgb=True),
        train_dataloader=dict(
            batch_size=4, num_workers=0, persistent_workers=False,
            sampler=dict(type='InfiniteSampler', shuffle=True),
            dataset=dict(type='CustomDataset', data_root=data_root, data_prefix='train',
                         pipeline=pipeline)),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=max_iters,
                       val_interval=val_interval or max_iters + 1),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=3e-3, weight_decay=0.05)),
        param_scheduler=[dict(type='LinearLR', start_factor=0.2, by_epoch=False, begin=0,
                              end=3)],
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=ckpt_interval, by_epoch=False,
                            max_keep_ckpts=max_keep_ckpts),
            logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=list(custom_hooks),
        randomness=dict(seed=0, deterministic=True),
        env_cfg=dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo')),
        log_level='INFO',
        work_dir=work_dir,
        experiment_name=f'rel_{uuid.uuid4().hex[:10]}',
    )
    if val_interval:
        cfg.update(
            val_dataloader=dict(
                batch_size=2, num_workers=0, persistent_workers=False,
                sampler=dict(type='DefaultSampler', shuffle=False),
                dataset=dict(type='CustomDataset', data_root=data_root, data_prefix='val',
                             pipeline=test_pipeline)),
            val_cfg=dict(), val_evaluator=dict(type='Accuracy', topk=(1, )))
    cfg = Config(cfg)
    cfg.merge_from_dict(copy.deepcopy(extra))  # nested dicts are merged, not replaced
    return cfg


def dump_cfg(cfg, path):
    cfg.dump(path)
    return path


def run_train(args, timeout=240, env=None):
    """``python tools/train.py ARGS`` from the repository root; returns CompletedProcess."""
    full_env = dict(os.environ)
    full_env['PYTHONPATH'] = ROOT + os.pathsep + full_env.get('PYTHONPATH', '')
    full_env.update(env or {})
    return subprocess.run([python(), TRAIN_PY, *args], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def weights(path):
    return load_checkpoint(path)['state_dict']


def assert_same_weights(a, b):
    assert set(a) == set(b)
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f'{len(different)} tensors differ, e.g. {different[:3]}'


def log_text(work_dir):
    """All log files of the runs in ``work_dir`` concatenated."""
    text = ''
    for path in sorted(glob.glob(osp.join(work_dir, '*', '*.log'))):
        with open(path) as f:
            text += f.read()
    return text


def checkpoints(work_dir):
    return sorted(osp.basename(p) for p in glob.glob(osp.join(work_dir, '*.pth')))


def forked(fn):
    """Run ``fn()`` in a forked child (imports already done, so it starts in milliseconds);
    return how the child ended: ('signal', n) or ('exit', code)."""
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        code = 1
        try:
            fn()
            code = 0
        except BaseException:  # noqa: B902
            import traceback
            traceback.print_exc()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return ('signal', os.WTERMSIG(status))
    return ('exit', os.WEXITSTATUS(status))


def workers_cfg(data_root, work_dir, loop='iter', persistent=True, num_workers=2, length=3,
                **extra):
    """:func:`tiny_cfg` reading through ``num_workers`` data-loader workers, with random crops
    and flips drawn in the workers and drop-path in the main process.

    ``loop='iter'``: ``length`` x 4 iterations, a checkpoint every 2; ``loop='epoch'``: ``length``
    epochs of 4 iterations (16 images, batch 4), a checkpoint every epoch. Every checkpoint kept.
    """
    epochs = loop == 'epoch'
    cfg = tiny_cfg(data_root, work_dir, max_iters=4 * length, ckpt_interval=1 if epochs else 2,
                   max_keep_ckpts=-1, **extra)
    loader = cfg.train_dataloader
    loader.num_workers, loader.persistent_workers = num_workers, persistent
    loader.dataset.pipeline.insert(2, dict(type='RandomFlip', prob=0.5, direction='horizontal'))
    if epochs:
        loader.sampler = dict(type='DefaultSampler', shuffle=True)
        cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=length)
        cfg.default_hooks.checkpoint.by_epoch = True
    return cfg
