"""mmpretrain's and mmdet's own tools run on stm_mm models (#27): tools/demo/openmmlab_tools.sh,
the commands of docs/analysis.md ("Using OpenMMLab's own tools with stm_mm"), on a digits
U-DWConv-micro trained by tools/train.py for one iteration on 10 digits, laid out as the digits
demo leaves it, and on an initialised digit-scenes Mask R-CNN (mmdet's browse_dataset,
confusion_matrix and analyze_results). The process boundary is the behaviour under test: these
are command-line tools.
"""
import json
import os
import os.path as osp
import shutil
import subprocess

import pytest
from PIL import Image

from .. import ROOT
from ..helpers.fork_python import python

CONFIG = 'configs/cls/digits/u_dwconv_micro_digits.py'
DET_CONFIG = 'configs/det/digit_scenes/u_dwconv_micro_maskrcnn_digits.py'


def save_initialised_detector(config, path):
    """The config's Mask R-CNN with its initial weights (no pretrained backbone), as a checkpoint."""
    import torch
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    cfg = Config.fromfile(osp.join(ROOT, config))
    cfg.model.backbone.init_cfg = None
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(cfg.model)
    model.init_weights()
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)


@pytest.mark.slow
def test_openmmlab_tools_script_on_a_demo_layout(tmp_path):
    from stm_mm.datasets import write_digits_imagefolder
    from stm_mm.datasets.digit_scenes import generate_digit_scenes
    data = str(tmp_path / 'digits')
    write_digits_imagefolder(data, size=32, per_class_limit=1)
    options = []
    for split in ('train', 'val', 'test'):
        options += [f'{split}_dataloader.dataset.data_root={data}',
                    f'{split}_dataloader.batch_size=10', f'{split}_dataloader.num_workers=0',
                    f'{split}_dataloader.persistent_workers=False']
    demo = tmp_path / 'demo'
    work_dir = demo / 'cls_dwconv_micro'
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    subprocess.run([python(), 'tools/train.py', CONFIG, '--work-dir', str(work_dir),
                    '--cfg-options', *options, 'train_cfg.max_epochs=1',
                    'default_hooks.logger.interval=1'],
                   cwd=ROOT, env=env, check=True, capture_output=True, timeout=600)
    shutil.copy(work_dir / 'epoch_1.pth', demo / 'cls_dwconv_micro.pth')
    scenes = str(tmp_path / 'scenes')
    generate_digit_scenes(scenes, num_train=2, num_val=2)
    detector = str(tmp_path / 'det_dwconv_micro.pth')
    save_initialised_detector(DET_CONFIG, detector)
    det_options = ['train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
                   'test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False',
                   'model.test_cfg.rcnn.score_thr=0.0']
    out = tmp_path / 'out'
    result = subprocess.run(
        ['bash', 'tools/demo/openmmlab_tools.sh'], cwd=ROOT, capture_output=True, text=True,
        timeout=900, env=dict(env, PYTHON=python(), STM='dwconv', DATA=data,
                              WORK_DIRS=str(demo), OUT=str(out), SCENES=scenes,
                              DET_CHECKPOINT=detector, EXTRA_DET_CFG_OPTIONS=' '.join(det_options),
                              EXTRA_CFG_OPTIONS=' '.join(options[-4:])))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for name in ('loss.png', 'loss_lr_mmdet.png', 'confusion_matrix.png'):
        assert min(Image.open(out / name).size) > 100, name
    assert Image.open(out / 'cam.png').size == (32, 32)  # the heat map over the digit
    assert "type='UnifiedBackbone'" in (out / 'config.txt').read_text()
    assert len(list((out / 'browse').glob('*.png'))) == 4
    assert (out / 'results.pkl').stat().st_size > 0
    assert sorted(p.name for p in (out / 'results').iterdir()) == ['fail', 'success']
    assert 'total:' in result.stdout  # get_flops
    # mmdet's tools on the detector: every training scene drawn, a confusion matrix over the 10
    # digits (+ background), the best and worst validation scenes by mAP
    with open(osp.join(scenes, 'annotations', 'instances_train.json')) as f:
        train_images = len(json.load(f)['images'])
    assert len(list((out / 'det_browse').glob('*.png'))) == train_images
    assert min(Image.open(out / 'det' / 'confusion_matrix.png').size) > 100
    assert (out / 'det_results.pkl').stat().st_size > 0
    assert len(list((out / 'det_results' / 'good').glob('*.png'))) >= 1
    assert len(list((out / 'det_results' / 'bad').glob('*.png'))) >= 1
