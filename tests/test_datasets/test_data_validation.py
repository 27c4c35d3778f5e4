"""COCO json and image-folder checks: every corruption is reported with the image/annotation
id; --skip-invalid drops exactly the bad entries; a fuzz test throws random corruptions at the
validator and at mmdet's loader."""
import json
import os.path as osp

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stm_mm.datasets.coco_check import check_coco, clean_coco
from stm_mm.datasets.validation import check_image_folder, validate_dataset_cfg
from stm_mm.errors import DataValidationError

from ..helpers.coco import CLASSES, SIZE, corrupt, make_coco, write


@pytest.fixture(scope='module')
def coco(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('coco'))
    return root, make_coco(root)


def _check(coco, tmp_path, fn, **kw):
    root, data = coco
    path = write(corrupt(data, fn), str(tmp_path / 'ann.json'))
    kw.setdefault('need_masks', True)
    return check_coco(path, img_dir=osp.join(root, 'img'), classes=CLASSES, **kw)


def test_valid_file_passes(coco, tmp_path):
    report = _check(coco, tmp_path, lambda d: None)
    assert report.ok, report.summary()


def _set(section, index, key, value):
    def fn(d):
        d[section][index][key] = value
    return fn


def _del(section, index, key):
    def fn(d):
        del d[section][index][key]
    return fn


@pytest.mark.parametrize('fn, expected', [
    (_set('annotations', 0, 'bbox', [50, 50, 30, 30]),
     'annotation id 1, image id 1: bbox [50, 50, 30, 30] extends outside the 64x64 image'),
    (_set('annotations', 0, 'bbox', [-9, 0, 10, 10]),
     'annotation id 1, image id 1: bbox [-9, 0, 10, 10] extends outside the 64x64 image'),
    (_set('annotations', 1, 'bbox', [3, 3, 0, 10]),
     'annotation id 2, image id 1: degenerate bbox [3, 3, 0, 10]'),
    (_set('annotations', 1, 'bbox', [3, 3, float('nan'), 10]),
     'annotation id 2, image id 1: bbox must be 4 finite numbers'),
    (_set('annotations', 1, 'bbox', [3, 3, 10]),
     'annotation id 2, image id 1: bbox must be 4 finite numbers'),
    (_set('annotations', 2, 'segmentation', []),
     'annotation id 3, image id 2: empty segmentation (the pipeline loads masks)'),
    (_set('annotations', 2, 'segmentation', [[1, 1, 5, 5]]),
     'annotation id 3, image id 2: polygon 0 is degenerate: 4 coordinates'),
    (_set('annotations', 2, 'segmentation', [[1, 1, 2, 2, 3, 3]]),
     'annotation id 3, image id 2: polygon 0 is degenerate: zero area'),
    (_set('annotations', 2, 'segmentation', [[1, 1, 90, 1, 90, 9]]),
     'annotation id 3, image id 2: polygon 0 extends outside the 64x64 image'),
    (_set('annotations', 3, 'segmentation', dict(size=[32, 32], counts='abc')),
     'annotation id 4, image id 2: RLE segmentation size [32, 32] does not match the image'),
    (_set('annotations', 3, 'segmentation', dict(size=[64, 64], counts=[10, 5])),
     'annotation id 4, image id 2: uncompressed RLE counts sum to 15'),
    (_set('annotations', 3, 'segmentation', dict(size=[64, 64], counts='12')),
     'annotation id 4, image id 2: compressed RLE counts cover 3 pixels, not height*width = '
     '4096'),
    (_set('annotations', 3, 'segmentation', dict(size=[64, 64], counts='xyz')),
     'annotation id 4, image id 2: compressed RLE counts are not a valid COCO RLE string'),
    (_set('annotations', 4, 'category_id', 99),
     'annotation id 5, image id 3: unknown category_id 99'),
    (_set('annotations', 4, 'image_id', 77),
     'annotation id 5, image id 77: image_id 77 is not an image of this file'),
    (_set('annotations', 5, 'id', 1),
     'annotation id 1, image id 3: duplicate annotation id'),
    (_set('annotations', 5, 'area', 0), 'annotation id 6, image id 3: area must be a positive'),
    (_del('annotations', 5, 'area'), 'annotation id 6, image id 3: area must be a positive'),
    (_set('images', 1, 'file_name', 'gone.png'), 'image id 2: image file missing: '),
    (_set('images', 1, 'width', 65), 'image id 2: image file 001.png is 64x64 but the json '
     'says 65x64'),
    (_set('images', 1, 'height', 0), 'image id 2: width/height must be positive integers'),
    (_set('images', 2, 'id', 1), 'image id 1: duplicate image id'),
])
def test_each_corruption_is_reported_and_skippable(coco, tmp_path, fn, expected):
    report = _check(coco, tmp_path, fn)
    assert not report.fatal, report.summary()
    assert any(str(p).startswith(expected) for p in report.problems), report.summary()
    # dropping the bad entries leaves a clean file that keeps every good annotation
    cleaned = clean_coco(report)
    recheck = _check(coco, tmp_path, lambda d: d.update(cleaned))
    assert recheck.ok, recheck.summary()
    assert len(cleaned['annotations']) >= len(coco[1]['annotations']) - 2


@pytest.mark.parametrize('text, expected', [
    ('{"images": [', 'malformed JSON: Expecting value at line 1 column 13'),
    ('[1, 2]', 'top level must be a JSON object, got list'),
    ('{"annotations": []}', '"images" must be a list, got nothing'),
    (json.dumps(dict(images=[], annotations=[], categories={})),
     '"categories" must be a list, got dict'),
    (json.dumps(dict(images=[], annotations=[], categories=[dict(id=1, name='cat')])),
     "config classes ['0', '1', '2'"),
])
def test_fatal_problems(coco, tmp_path, text, expected):
    root, _ = coco
    path = str(tmp_path / 'bad.json')
    with open(path, 'w') as f:
        f.write(text)
    report = check_coco(path, img_dir=osp.join(root, 'img'), classes=CLASSES)
    assert report.fatal and str(report.fatal[0]).startswith(expected), report.summary()


def test_validate_dataset_cfg_raises_or_cleans(coco, tmp_path):
    root, data = coco
    bad = corrupt(data, _set('annotations', 0, 'bbox', [50, 50, 30, 30]))
    ann = write(bad, str(tmp_path / 'train.json'))
    ds = dict(type='CocoDataset', data_root=root, ann_file=ann, data_prefix=dict(img='img/'),
              metainfo=dict(classes=CLASSES),
              pipeline=[dict(type='LoadAnnotations', with_bbox=True, with_mask=True)])
    with pytest.raises(DataValidationError) as info:
        validate_dataset_cfg(dict(ds), 'train')
    message = str(info.value)
    assert message.splitlines()[0] == (f'train dataset: {ann}: 1 invalid annotation(s), '
                                       '0 invalid image(s)')
    assert 'annotation id 1, image id 1: bbox [50, 50, 30, 30] extends outside' in message
    assert message.splitlines()[-1].startswith('fix: fix the annotation file, or pass '
                                               '--skip-invalid')
    work_dir = str(tmp_path / 'work')
    wrapped = dict(type='RepeatDataset', times=2, dataset=dict(ds))
    replaced = validate_dataset_cfg(wrapped, 'train', skip_invalid=True, work_dir=work_dir)
    cleaned_path = osp.join(work_dir, 'cleaned_annotations', 'train_train.json')
    assert replaced == {ann: cleaned_path} and wrapped['dataset']['ann_file'] == cleaned_path
    with open(cleaned_path) as f:
        cleaned = json.load(f)
    assert [a['id'] for a in cleaned['annotations']] == [a['id'] for a in data['annotations']][1:]
    with open(osp.join(work_dir, 'cleaned_annotations', 'train_train_problems.txt')) as f:
        assert f.read().startswith('annotation id 1, image id 1: bbox')


def test_image_folder_checks(tmp_path):
    (tmp_path / 'empty' / 'cat').mkdir(parents=True)
    with pytest.raises(DataValidationError, match='has no images'):
        check_image_folder(str(tmp_path / 'empty'))
    with pytest.raises(DataValidationError, match='image folder not found'):
        check_image_folder(str(tmp_path / 'nowhere'))
    (tmp_path / 'loose').mkdir()
    (tmp_path / 'loose' / 'a.png').write_bytes(b'x')
    with pytest.raises(DataValidationError, match='1 image.s. lie directly in it'):
        check_image_folder(str(tmp_path / 'loose'))
    assert check_image_folder(str(tmp_path / 'loose'), with_label=False) == 1


# ------------------------------------------------------------------------------ fuzzing
_BAD_VALUES = st.sampled_from([
    None, 0, -1, 1.5, 'x', '', [], {}, [1], [0, 0, 0, 0], [1, 2, 3, 4, 5], [-5, -5, 3, 3],
    [60, 60, 30, 30], [1, 1, 0.5, 0.5], [[1, 1, 2, 2]], [[0, 0, 1, 1, 2, 2]],
    [[1, 1, 80, 1, 80, 80]], [[1, 1, 10, 1, 10, 10, 'a', 3]], dict(size=[64, 64], counts=[4096]),
    dict(size=[64, 64], counts=[4000, 96]), dict(size=[8, 8], counts='xyz'),
    dict(size=[64, 64], counts=''), dict(size=[64, 64], counts='xyz'),
    dict(size=[64, 64], counts='!!!!'), dict(size=[64, 64], counts='XY2`0`1'), dict(counts=5), 99, 10 ** 6, float('inf'), True,
    'gone.png', 'sub/../000.png', 2])
_ANN_KEYS = st.sampled_from(['id', 'image_id', 'category_id', 'bbox', 'area', 'iscrowd',
                             'segmentation'])
_IMG_KEYS = st.sampled_from(['id', 'file_name', 'width', 'height'])
_OPS = st.one_of(
    st.tuples(st.just('ann'), st.integers(0, 7), _ANN_KEYS, _BAD_VALUES),
    st.tuples(st.just('ann_del'), st.integers(0, 7), _ANN_KEYS, st.none()),
    st.tuples(st.just('img'), st.integers(0, 3), _IMG_KEYS, _BAD_VALUES),
    st.tuples(st.just('img_del'), st.integers(0, 3), _IMG_KEYS, st.none()),
    st.tuples(st.just('cat'), st.integers(0, 9), st.sampled_from(['id', 'name']), _BAD_VALUES),
    st.tuples(st.just('top'), st.none(),
              st.sampled_from(['images', 'annotations', 'categories']), _BAD_VALUES),
)


def _apply(data, op):
    kind, index, key, value = op
    if kind in ('ann', 'ann_del', 'img', 'img_del', 'cat'):
        section = {'ann': 'annotations', 'img': 'images', 'cat': 'categories'}[
            kind.split('_')[0]]
        items = data[section] if isinstance(data.get(section), list) else []
        if index < len(items) and isinstance(items[index], dict):
            if kind.endswith('_del'):
                items[index].pop(key, None)
            else:
                items[index][key] = value
    elif kind == 'top':
        data[key] = value


def _mmdet_loads(path, img_dir):
    """mmdet's CocoDataset + LoadAnnotations(bbox, mask) on every image; returns instance
    counts per image id."""
    from mmdet.datasets import CocoDataset
    from mmdet.datasets.transforms import LoadAnnotations
    ds = CocoDataset(ann_file=path, data_prefix=dict(img=img_dir), metainfo=dict(classes=CLASSES),
                     pipeline=[], filter_cfg=None, backend_args=None)
    load = LoadAnnotations(with_bbox=True, with_mask=True)
    counts = {}
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        results = load(dict(info, ori_shape=(info['height'], info['width'])))
        assert len(results['gt_masks']) == len(results['gt_bboxes']) == len(info['instances'])
        masks = results['gt_masks'].masks
        assert masks.size == 0 or masks.max() <= 1  # garbage RLE decodes to values > 1
        counts[info['img_id']] = len(info['instances'])
    return counts


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(ops=st.lists(_OPS, min_size=1, max_size=4),
       cut=st.one_of(st.none(), st.integers(0, 4000)))
def test_fuzz_validator_and_loader(coco, tmp_path, ops, cut):
    """Random corruptions: the validator never crashes; what it accepts (as is, or after
    dropping what it flags) mmdet loads with masks, without silently dropping annotations."""
    import copy
    root, data = coco
    img_dir = osp.join(root, 'img')
    bad = copy.deepcopy(data)
    for op in ops:
        _apply(bad, op)
    path = str(tmp_path / 'fuzz.json')
    text = json.dumps(bad)
    if cut is not None and cut < len(text):
        text = text[:cut]  # a truncated download
    with open(path, 'w') as f:
        f.write(text)
    report = check_coco(path, img_dir=img_dir, classes=CLASSES, need_masks=True)
    assert report.summary()  # always printable
    if report.fatal:
        return
    usable = report.data if report.ok else clean_coco(report)
    clean_path = write(usable, str(tmp_path / 'clean.json'))
    assert check_coco(clean_path, img_dir=img_dir, classes=CLASSES, need_masks=True).ok
    counts = _mmdet_loads(clean_path, img_dir + '/')
    expected = {}
    for ann in usable.get('annotations', []):
        expected[ann['image_id']] = expected.get(ann['image_id'], 0) + 1
    assert {k: v for k, v in counts.items() if v} == expected


def test_config_classes_ignore_and_crowd_drop_nothing_silently(coco, tmp_path):
    """Annotations of categories missing from metainfo.classes are errors with counts per
    category (mmdet drops them silently); with --skip-invalid they are dropped and listed.
    ignore=1 / iscrowd=1 annotations are counted in a log line. An empty annotation list is
    fatal, naming the file."""
    root, data = coco
    anns = data['annotations']
    cid = max({a['category_id'] for a in anns[2:]} - {anns[0]['category_id'],
                                                      anns[1]['category_id']})
    name = CLASSES[cid - 1]
    classes = tuple(c for c in CLASSES if c != name)
    n_out = sum(1 for a in anns if a['category_id'] == cid)

    def edit(d):
        d['annotations'][0].update(ignore=1)
        d['annotations'][1].update(iscrowd=1)
    ann = write(corrupt(data, edit), str(tmp_path / 'train.json'))
    ds = dict(type='CocoDataset', data_root=root, ann_file=ann, data_prefix=dict(img='img/'),
              metainfo=dict(classes=classes),
              pipeline=[dict(type='LoadAnnotations', with_bbox=True, with_mask=True)])
    with pytest.raises(DataValidationError) as info:
        validate_dataset_cfg(dict(ds), 'train')
    lines = str(info.value).splitlines()
    assert "is not in the config's metainfo.classes" in lines[1]
    assert lines[-2] == ("  annotations of categories not in the config's metainfo.classes "
                         f"(mmdet would drop them silently): '{name}' (id {cid}): {n_out}")
    assert lines[-1].startswith('fix: add the missing names to metainfo.classes, or pass '
                                '--skip-invalid')

    logged = []
    logger = type('L', (), {'warning': lambda self, m: logged.append(m)})()
    work_dir = str(tmp_path / 'work')
    validate_dataset_cfg(ds, 'train', skip_invalid=True, work_dir=work_dir, logger=logger)
    assert f'--skip-invalid dropped {n_out} annotation(s) and 0 image(s)' in logged[1]
    with open(osp.join(work_dir, 'cleaned_annotations', 'train_train_problems.txt')) as f:
        assert f.read().count("is not in the config's metainfo.classes") == n_out
    assert logged[0] == (f'train dataset: {ann}: of its annotations, 1 marked ignore=1 are '
                         'skipped and 1 marked iscrowd=1 are ignore regions (no loss) (as in '
                         'mmdet)')

    empty = write(corrupt(data, lambda d: d.update(annotations=[])), str(tmp_path / 'e.json'))
    with pytest.raises(DataValidationError, match=f'train dataset: {empty}: cannot be used\n'
                       '  the "annotations" list is empty'):
        validate_dataset_cfg(dict(ds, ann_file=empty, metainfo=dict(classes=CLASSES)), 'train')
