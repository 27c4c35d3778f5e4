"""The model zoo in mmpretrain's format (stm_mm/zoo.py): the metafiles against the paper's tables
and the configs, ``list_models``/``get_model`` with the project's names, and the authors' files
converted while MMEngine loads them (a local file, a release URL served from the cache with the
download replaced by a local copy, an mmdet 2.x detector). Nothing is downloaded."""
import os.path as osp
import re
import shutil

import pytest
import torch
import yaml
from mmengine.config import Config

from stm_mm.analysis.paper import TABLE_IV
from stm_mm.converters import official_to_stm_mm
from stm_mm.models import SCALES, STM_NAMES
from stm_mm.zoo import to_stm_mm_layout

from .. import ROOT
from .test_mmdet2 import authors_detector_state_dict, build_detector
from .test_official_classification import official_state_dict

# stm_mm mixer -> the name in the authors' release files (docs/classification.md)
RELEASE_NAME = dict(halo='halonet', pvt='pvt', swin='swin', dwconv='convnext',
                    dcnv3='internimage')
RELEASE_URL = 'https://github.com/OpenGVLab/STM-Evaluation/releases/download/'
CLS_NAMES = sorted(f'u-{stm}-{scale}_in1k' for stm in STM_NAMES for scale in SCALES)


def _models(metafile):
    with open(osp.join(ROOT, metafile)) as f:
        return yaml.safe_load(f)['Models']


def _resolve(dotted):
    """'stm_mm.transfer.f (tools/x.py)' -> (the function, the tool path)."""
    name, tool = re.fullmatch(r'(\S+) \((\S+)\)', dotted).groups()
    module, attr = name.rsplit('.', 1)
    return getattr(__import__(module, fromlist=[attr]), attr), osp.join(ROOT, tool)


def test_model_index_imports_both_metafiles():
    with open(osp.join(ROOT, 'model-index.yml')) as f:
        assert yaml.safe_load(f) == {'Import': ['configs/cls/metafile.yml',
                                                'configs/det/metafile.yml']}


def test_classification_metafile_carries_table_iv_and_the_release_files():
    models = _models('configs/cls/metafile.yml')
    assert sorted(m['Name'] for m in models) == CLS_NAMES
    for m in models:
        stm, scale = re.fullmatch(r'u-(\w+)-(\w+)_in1k', m['Name']).groups()
        params, macs, top1 = TABLE_IV[(stm, scale)]
        assert m['Metadata'] == {'FLOPs': round(macs * 1e9), 'Parameters': round(params * 1e6)}
        assert m['Results'] == [{'Task': 'Image Classification', 'Dataset': 'ImageNet-1k',
                                 'Metrics': {'Top 1 Accuracy': top1}}]
        url = f'{RELEASE_URL}cls-ckpt/unified_{RELEASE_NAME[stm]}_{scale}.pth'
        assert m['Weights'] == m['Converted From']['Weights'] == url
        backbone = Config.fromfile(osp.join(ROOT, m['Config'])).model.backbone
        assert (backbone.stm, backbone.arch) == (stm, scale)
        converter, tool = _resolve(m['Converted From']['Converter'])
        assert converter.__name__ == 'official_checkpoint_to_stm_mm' and osp.isfile(tool)


def test_detection_metafile_carries_table_v_and_the_release_files():
    table = {}  # Table V as printed in docs/detection.md: config -> (box AP, mask AP)
    with open(osp.join(ROOT, 'docs/detection.md')) as f:
        for line in f:
            m = re.match(r'\| \w+ \| U-\S+ \| `(u_\w+_maskrcnn)` \| (.*) \|$', line)
            if m:
                values = m.group(2).split(' | ')
                table[m.group(1)] = (float(values[0]), float(values[4]))
    models = _models('configs/det/metafile.yml')
    assert len(models) == len(table) == 20
    for m in models:
        stm, scale = re.fullmatch(r'mask-rcnn_u-(\w+)-(\w+)_fpn_1x_coco', m['Name']).groups()
        assert m['Config'] == f'configs/det/u_{stm}_{scale}_maskrcnn.py'
        assert osp.isfile(osp.join(ROOT, m['Config']))
        box, mask = table[f'u_{stm}_{scale}_maskrcnn']
        assert [r['Metrics'] for r in m['Results']] == [{'box AP': box}, {'mask AP': mask}]
        url = f'{RELEASE_URL}det-ckpt/mask_rcnn_unified_{RELEASE_NAME[stm]}_{scale}_1x.pth'
        assert m['Weights'] == m['Converted From']['Weights'] == url
        converter, tool = _resolve(m['Converted From']['Converter'])
        assert converter.__name__ == 'convert_mmdet2_checkpoint' and osp.isfile(tool)


def test_list_models_and_get_model():
    import mmpretrain
    assert mmpretrain.list_models('u-*') == CLS_NAMES
    assert mmpretrain.list_models('u-*', task='Image Classification') == CLS_NAMES
    model = mmpretrain.get_model('u-halo-tiny_in1k')
    assert sum(p.numel() for p in model.parameters()) == 31_523_176  # the authors' model
    assert model.backbone.stm == 'halo' and len(model._dataset_meta['classes']) == 1000


def _assert_weights(model, expected):
    got = model.state_dict()
    assert set(got) == set(expected)
    for key, value in expected.items():
        torch.testing.assert_close(got[key], value, rtol=0, atol=0, msg=key)


@pytest.mark.parametrize('stm', STM_NAMES)
def test_get_model_converts_the_authors_file(stm, tmp_path):
    """``{'model', 'model_ema'}`` with the authors' keys and shapes: ``model`` is loaded."""
    import mmpretrain
    official = official_state_dict(stm, 'micro', seed=1)
    path = str(tmp_path / f'unified_{RELEASE_NAME[stm]}_micro.pth')
    torch.save({'model': official, 'model_ema': official_state_dict(stm, 'micro', seed=2),
                'epoch': 299}, path)
    model = mmpretrain.get_model(f'u-{stm}-micro_in1k', pretrained=path)
    _assert_weights(model, official_to_stm_mm(official))


def test_ema_only_and_bare_authors_files(tmp_path):
    import mmpretrain
    official = official_state_dict('dwconv', 'micro', seed=3)
    expected = official_to_stm_mm(official)
    for name, content in (('ema.pth', {'model_ema': official}), ('bare.pth', official)):
        torch.save(content, tmp_path / name)
        model = mmpretrain.get_model('u-dwconv-micro_in1k', pretrained=str(tmp_path / name))
        _assert_weights(model, expected)


def test_other_checkpoints_pass_unchanged():
    mmengine_style = {'state_dict': {'backbone.stem.0.weight': torch.zeros(1)}, 'meta': {}}
    assert to_stm_mm_layout(mmengine_style) is mmengine_style


def test_release_url_downloads_once_into_the_hub_cache(tmp_path, monkeypatch):
    import mmpretrain
    official = official_state_dict('pvt', 'micro', seed=4)
    source = tmp_path / 'served.pth'
    torch.save({'model': official}, source)
    downloads = []

    def fake_download(url, dst, *args, **kwargs):  # torch.hub's, which MMEngine calls
        downloads.append(url)
        shutil.copy(source, dst)

    monkeypatch.setattr(torch.hub, '_hub_dir', str(tmp_path / 'hub'))
    monkeypatch.setattr(torch.hub, 'download_url_to_file', fake_download)
    for _ in range(2):
        model = mmpretrain.get_model('u-pvt-micro_in1k', pretrained=True)
        _assert_weights(model, official_to_stm_mm(official))
    assert downloads == [f'{RELEASE_URL}cls-ckpt/unified_pvt_micro.pth']
    assert osp.isfile(tmp_path / 'hub' / 'checkpoints' / 'unified_pvt_micro.pth')


def test_mmengine_loads_the_authors_detector(tmp_path):
    from mmengine.runner import load_checkpoint
    model = build_detector('swin')
    ours, theirs = authors_detector_state_dict(model, 'swin')
    classes = tuple(f'class{i}' for i in range(80))
    path = str(tmp_path / 'mask_rcnn_unified_swin_micro_1x.pth')
    torch.save({'state_dict': theirs, 'meta': {'CLASSES': classes}}, path)
    checkpoint = load_checkpoint(model, path, strict=True)
    _assert_weights(model, ours)
    assert checkpoint['meta']['dataset_meta']['classes'] == classes
