"""Checks of training data before a run starts: COCO json files and image folders.

Every problem is reported with where it is (file, image id, annotation id) and what is wrong, so a
bad dataset fails in the first second with a readable reason instead of minutes later inside a
data worker (or, worse, trains silently on garbage: mmdet drops some bad boxes without a word).

* :mod:`stm_mm.datasets.coco_check` checks a COCO json (:func:`check_coco`, :func:`clean_coco`).
* :func:`check_image_folder` checks an image-folder dataset (mmpretrain ``CustomDataset``).
* :func:`validate_dataset_cfg` applies the right checks to a dataset config (recursing into
  dataset wrappers) and, with ``skip_invalid``, writes a cleaned json into the work dir and points
  the config at it.

Nothing here imports mmdet or mmpretrain; paths are resolved like MMEngine's ``BaseDataset``.
"""
import os
import os.path as osp

from ..errors import DataValidationError
from ..fileio import atomic_write_json, atomic_write_text
from .coco_check import check_coco, clean_coco

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif', '.tiff', '.webp')

# Dataset types checked as COCO json (mmdet CocoDataset and its usual subclasses) and as image
# folders (mmpretrain CustomDataset); subclasses found in the registries are recognised too.
COCO_TYPES = {'CocoDataset', 'CocoPanopticDataset', 'CityscapesDataset', 'DSDLDetDataset'}
FOLDER_TYPES = {'CustomDataset', 'ImageNet', 'ImageNet21k'}
WRAPPER_KEYS = ('dataset', 'datasets')


def missing_folder_message(folder):
    return (f'image folder not found: {folder}; fix: set data_root / data_prefix to the folder '
            'that holds the images (class sub-folders for classification)')


def check_image_folder(folder, extensions=IMG_EXTENSIONS, with_label=True):
    """Raise :class:`DataValidationError` unless ``folder`` holds at least one image file.

    With ``with_label`` the images must sit in class sub-folders (``folder/<class>/<img>``).
    Returns the number of images found.
    """
    if not osp.isdir(folder):
        raise DataValidationError(missing_folder_message(folder))
    exts = tuple(e.lower() for e in extensions)
    count, loose = 0, 0
    for root, _, files in os.walk(folder, followlinks=True):
        n = sum(1 for name in files if name.lower().endswith(exts))
        if root == folder:
            loose += n
        else:
            count += n
    if not with_label:
        count += loose
    if count == 0:
        extra = (f' ({loose} image(s) lie directly in it, but a labelled CustomDataset reads '
                 'class sub-folders)' if loose else '')
        raise DataValidationError(
            f'image folder {folder} has no images ({", ".join(exts)}){extra}; fix: point '
            'data_root / data_prefix at the dataset (e.g. write the digits with '
            'tools/dataset_converters/digits_to_imagefolder.py)')
    return count


def _join(root, path):
    if root and path and not osp.isabs(path) and '://' not in path:
        return osp.join(root, path)
    return path


def _registered_subclass(type_name, base_names):
    """Whether dataset type ``type_name`` is (a registered subclass of) one of ``base_names``."""
    if not isinstance(type_name, str):
        cls = type_name
    else:
        name = type_name.split('.')[-1]
        if name in base_names:
            return True
        cls = None
        for module in ('mmdet.registry', 'mmpretrain.registry', 'mmengine.registry'):
            try:
                registry = __import__(module, fromlist=['DATASETS']).DATASETS
                cls = registry.get(type_name)
            except Exception:
                cls = None
            if cls is not None:
                break
    if not isinstance(cls, type):
        return False
    return any(base.__name__ in base_names for base in cls.__mro__)


def _pipeline_loads_masks(pipeline):
    for t in pipeline or []:
        if isinstance(t, dict) and str(t.get('type', '')).split('.')[-1] == 'LoadAnnotations' \
                and t.get('with_mask', False):
            return True
    return False


def iter_datasets(dataset_cfg):
    """The leaf dataset configs inside wrappers (ConcatDataset, RepeatDataset, ...)."""
    if not isinstance(dataset_cfg, dict):
        return
    inner = [dataset_cfg[k] for k in WRAPPER_KEYS if k in dataset_cfg]
    if inner:
        for item in inner:
            for sub in (item if isinstance(item, (list, tuple)) else [item]):
                yield from iter_datasets(sub)
    else:
        yield dataset_cfg


def missing_coco_message(split, path, data_root):
    """One line for a COCO annotation file that is not there: where the files go, how to
    point the config elsewhere."""
    root = data_root or osp.dirname(osp.dirname(path)) or '.'
    return (f'{split} dataset: COCO annotation file not found: {path}; fix: put COCO 2017 '
            f'under {root} (annotations/instances_train2017.json, annotations/'
            'instances_val2017.json, train2017/, val2017/; see docs/detection.md), or link a '
            f'copy there (ln -s /path/to/coco {root.rstrip("/")}), or set data_root: '
            '--cfg-options train_dataloader.dataset.data_root=/path/to/coco/ '
            'val_dataloader.dataset.data_root=/path/to/coco/ '
            'test_dataloader.dataset.data_root=/path/to/coco/ '
            'val_evaluator.ann_file=/path/to/coco/annotations/instances_val2017.json '
            'test_evaluator.ann_file=/path/to/coco/annotations/instances_val2017.json')


def _locate(ds, split):
    """``(kind, annotation file, image folder)`` of a leaf dataset config, kind 'coco',
    'folder' (an image folder read by class sub-folders) or None (not checked); raises
    :class:`DataValidationError` when the annotation file or the folder does not exist."""
    dtype, root = ds.get('type', ''), ds.get('data_root')
    ann_file = ds.get('ann_file') or ''
    prefix = ds.get('data_prefix') or {}
    if isinstance(ann_file, str) and '://' in ann_file or (
            isinstance(root, str) and '://' in root):
        return None, None, None  # remote storage: not checked
    if _registered_subclass(dtype, COCO_TYPES) and ann_file:
        path = _join(root, ann_file)
        img_dir = None
        if isinstance(prefix, dict):
            img_dir = _join(root, prefix.get('img', prefix.get('img_path', '')) or '')
        elif isinstance(prefix, str):
            img_dir = _join(root, prefix)
        if img_dir == '':
            img_dir = root or ''
        if not osp.isfile(path):
            raise DataValidationError(missing_coco_message(split, path, root))
        return 'coco', path, img_dir
    if not _registered_subclass(dtype, FOLDER_TYPES):
        return None, None, None
    if ann_file:
        path = _join(root, ann_file)
        if not osp.isfile(path):
            raise DataValidationError(
                f'{split} dataset: annotation file not found: {path}; fix: set '
                'ann_file (or leave it empty to read class sub-folders)')
        return None, None, None
    if isinstance(prefix, dict):
        prefix = prefix.get('img_path', prefix.get('img', '')) or ''
    folder = _join(root, prefix) if prefix else root
    if not folder:
        return None, None, None
    if not osp.isdir(folder):
        raise DataValidationError(f'{split} dataset: {missing_folder_message(folder)}')
    return 'folder', None, folder


def check_data_exists(dataset_cfg, split='train'):
    """The quick part of :func:`validate_dataset_cfg`: the annotation files and image folders
    of every leaf dataset exist (run before the model is built)."""
    for ds in iter_datasets(dataset_cfg):
        _locate(ds, split)


def validate_dataset_cfg(dataset_cfg, split='train', skip_invalid=False, work_dir=None,
                         logger=None):
    """Check every leaf dataset of ``dataset_cfg`` (a dict, edited in place when cleaning).

    Returns ``{original ann_file path: cleaned path}`` for the json files replaced by cleaned
    copies (``skip_invalid``), so that evaluators reading the same file can be pointed at them.
    Raises :class:`DataValidationError` for anything that cannot be skipped.
    """
    def log(msg, level='warning'):
        if logger is not None:
            getattr(logger, level)(msg)

    replaced = {}
    for ds in iter_datasets(dataset_cfg):
        kind, path, img_dir = _locate(ds, split)
        if kind == 'coco':
            classes = (ds.get('metainfo') or {}).get('classes')
            report = check_coco(path, img_dir=img_dir, classes=classes,
                                need_masks=_pipeline_loads_masks(ds.get('pipeline')))
            if report.fatal:
                raise DataValidationError(f'{split} dataset: ' + report.summary())
            if report.exclusions():
                log(f'{split} dataset: {report.exclusions()}')
            if report.problems:
                if not skip_invalid:
                    raise DataValidationError(f'{split} dataset: ' + report.summary())
                if work_dir is None:
                    raise DataValidationError(f'{split} dataset: --skip-invalid needs a work '
                                              'dir for the cleaned annotation file')
                cleaned = clean_coco(report)
                out_dir = osp.join(work_dir, 'cleaned_annotations')
                out = osp.abspath(osp.join(out_dir, f'{split}_{osp.basename(path)}'))
                atomic_write_json(out, cleaned)
                atomic_write_text(out[:-5] + '_problems.txt' if out.endswith('.json')
                                  else out + '_problems.txt',
                                  '\n'.join(str(p) for p in report.problems) + '\n')
                n_ann = len(_annotations(report.data)) - len(_annotations(cleaned))
                n_img = len(report.data['images']) - len(cleaned['images'])
                log(f'{split} dataset: --skip-invalid dropped {n_ann} annotation(s) and '
                    f'{n_img} image(s) from {path} ({len(report.problems)} problem(s), listed '
                    f'in {osp.basename(out)[:-5]}_problems.txt); using the cleaned copy {out}')
                ds['ann_file'] = out
                replaced[osp.abspath(path)] = out
        elif kind == 'folder':
            try:
                check_image_folder(img_dir, ds.get('extensions', IMG_EXTENSIONS),
                                   with_label=ds.get('with_label', True))
            except DataValidationError as e:
                raise DataValidationError(f'{split} dataset: {e}') from None
    return replaced


def _annotations(data):
    return data.get('annotations') or []
