"""COCO json checks: what is wrong in an annotation file, where (image id, annotation id).

* :func:`check_coco` reads a COCO json and returns a :class:`CocoReport`: fatal problems (the
  file cannot be used at all: malformed json, missing sections, config classes absent from the
  categories, ...) and per-image / per-annotation problems that can be skipped.
* :func:`clean_coco` drops the skippable problems from the json data.

Nothing here imports mmdet; :mod:`stm_mm.datasets.validation` applies these checks to configs.
"""
import json
import math
import os.path as osp
from collections import Counter

FIX_HINT = ('fix the annotation file, or pass --skip-invalid (config: '
            'reliability=dict(skip_invalid=True)) to drop the bad entries')


class Problem:
    """One thing wrong in an annotation file."""

    __slots__ = ('message', 'image_id', 'ann_id', 'fatal')

    def __init__(self, message, image_id=None, ann_id=None, fatal=False):
        self.message, self.image_id, self.ann_id, self.fatal = message, image_id, ann_id, fatal

    def __str__(self):
        where = []
        if self.ann_id is not None:
            where.append(f'annotation id {self.ann_id}')
        if self.image_id is not None:
            where.append(f'image id {self.image_id}')
        return (', '.join(where) + ': ' if where else '') + self.message

    __repr__ = __str__


class CocoReport:
    """What :func:`check_coco` found. ``data`` is the parsed json (None when unreadable)."""

    def __init__(self, ann_file):
        self.ann_file = ann_file
        self.data = None
        self.problems = []
        self.bad_image_ids = set()   # images (and all their annotations) to drop
        self.dup_image_idx = set()   # positions in data['images'] of repeated ids (dropped)
        self.bad_ann_idx = set()     # positions in data['annotations'] to drop
        self.excluded = Counter()    # (name, id) -> annotations of categories not in classes
        self.ignored = 0             # valid annotations with ignore=1 (mmdet skips them)
        self.crowd = 0               # valid annotations with iscrowd=1 (excluded from the loss)

    @property
    def fatal(self):
        return [p for p in self.problems if p.fatal]

    @property
    def ok(self):
        return not self.problems

    def add(self, message, image_id=None, ann_id=None, fatal=False):
        self.problems.append(Problem(message, image_id, ann_id, fatal))

    def summary(self, limit=10):
        """Several lines: the count, the first ``limit`` problems, the fix."""
        fatal = self.fatal
        problems = fatal or self.problems
        if fatal:
            head = f'{self.ann_file}: cannot be used'
        else:
            head = (f'{self.ann_file}: {len(self.bad_ann_idx)} invalid annotation(s), '
                    f'{len(self.bad_image_ids) + len(self.dup_image_idx)} invalid image(s)')
        lines = [head] + [f'  {p}' for p in problems[:limit]]
        if len(problems) > limit:
            lines.append(f'  ... and {len(problems) - limit} more')
        if self.excluded and not fatal:
            lines.append('  annotations of categories not in the config\'s metainfo.classes '
                         '(mmdet would drop them silently): ' + ', '.join(
                             f'{name!r} (id {cid}): {n}'
                             for (name, cid), n in sorted(self.excluded.items())))
        fix = FIX_HINT
        if self.excluded:
            fix = ('add the missing names to metainfo.classes, or ' + FIX_HINT.replace(
                'fix the annotation file, or ', '') + ' (these too)')
        lines.append('fix: ' + ('correct the file (or the config\'s ann_file / metainfo)'
                                if fatal else fix))
        return '\n'.join(lines)

    def exclusions(self):
        """The line saying which valid annotations training leaves out, or None."""
        parts = []
        if self.ignored:
            parts.append(f'{self.ignored} marked ignore=1 are skipped')
        if self.crowd:
            parts.append(f'{self.crowd} marked iscrowd=1 are ignore regions (no loss)')
        if not parts:
            return None
        return f'{self.ann_file}: of its annotations, ' + ' and '.join(parts) + ' (as in mmdet)'


def _is_number(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _is_id(x):
    return isinstance(x, int) and not isinstance(x, bool)


def _polygon_area(coords):
    xs, ys = coords[0::2], coords[1::2]
    n = len(xs)
    return 0.5 * abs(sum(xs[i] * ys[(i + 1) % n] - xs[(i + 1) % n] * ys[i] for i in range(n)))


def _rle_string_counts(counts):
    """The run lengths of a compressed COCO RLE string (pycocotools' ``rleFrString``), or
    None when the string is not a valid encoding."""
    if isinstance(counts, bytes):
        try:
            counts = counts.decode('ascii')
        except UnicodeDecodeError:
            return None
    if not counts:
        return None
    runs, p, n = [], 0, len(counts)
    while p < n:
        x = k = 0
        more = True
        while more:
            if p >= n:
                return None  # a run cut off in the middle
            c = ord(counts[p]) - 48
            if not 0 <= c < 64:
                return None
            x |= (c & 0x1f) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(runs) > 2:
            x += runs[-2]
        runs.append(x)
    return runs


def _check_segmentation(seg, width, height, tol, need_masks):
    """None when fine, else the reason."""
    if seg is None or (isinstance(seg, list) and not seg):
        return 'empty segmentation (the pipeline loads masks)' if need_masks else None
    if isinstance(seg, dict):  # RLE
        size, counts = seg.get('size'), seg.get('counts')
        if (not isinstance(size, (list, tuple)) or len(size) != 2
                or not all(_is_id(v) for v in size)):
            return f'RLE segmentation without a valid size: {size!r}'
        if list(size) != [height, width]:
            return (f'RLE segmentation size {list(size)} does not match the image '
                    f'({height}x{width}, [height, width])')
        if isinstance(counts, list):
            if not counts or not all(_is_id(c) and c >= 0 for c in counts):
                return 'uncompressed RLE counts must be non-negative integers'
            if sum(counts) != height * width:
                return (f'uncompressed RLE counts sum to {sum(counts)}, not height*width = '
                        f'{height * width}')
            if need_masks and sum(counts[1::2]) == 0:
                return 'empty RLE mask (no foreground pixel)'
        elif isinstance(counts, (str, bytes)):
            runs = _rle_string_counts(counts)
            if runs is None:
                return 'compressed RLE counts are not a valid COCO RLE string'
            if any(c < 0 for c in runs) or sum(runs) != height * width:
                return (f'compressed RLE counts cover {sum(runs)} pixels, not height*width = '
                        f'{height * width}')
            if need_masks and sum(runs[1::2]) == 0:
                return 'empty RLE mask (no foreground pixel)'
        else:
            return f'RLE counts must be a list or a string, got {type(counts).__name__}'
        return None
    if not isinstance(seg, list):
        return f'segmentation must be a list of polygons or an RLE dict, got {type(seg).__name__}'
    for k, poly in enumerate(seg):
        if not isinstance(poly, list) or not all(_is_number(v) for v in poly):
            return f'polygon {k} is not a list of finite numbers'
        if len(poly) < 6 or len(poly) % 2:
            return (f'polygon {k} is degenerate: {len(poly)} coordinates (needs an even count, '
                    'at least 3 points)')
        if _polygon_area(poly) <= 0:
            return f'polygon {k} is degenerate: zero area'
        xs, ys = poly[0::2], poly[1::2]
        if min(xs) < -tol or min(ys) < -tol or max(xs) > width + tol or max(ys) > height + tol:
            return f'polygon {k} extends outside the {width}x{height} image'
    return None


def _image_size(path):
    """(width, height) from the file header, or None when PIL is missing or cannot tell."""
    try:
        from PIL import Image
        with Image.open(path) as im:
            return im.size
    except ImportError:
        return None
    except Exception:  # unreadable: reported by the caller
        return False


def check_coco(ann_file, img_dir=None, classes=None, check_files=True, need_masks=False,
               box_tolerance=1.0):
    """Check a COCO json; returns a :class:`CocoReport` (never raises for bad content).

    ``img_dir``: where ``file_name`` s live (checked when ``check_files``). ``classes``: the
    config's class names, which must all be category names. ``need_masks``: the pipeline loads
    masks, so every annotation needs a non-empty segmentation. Boxes and polygons may exceed the
    image by ``box_tolerance`` pixels (rounding).
    """
    report = CocoReport(ann_file)
    tol = box_tolerance
    if not osp.isfile(ann_file):
        report.add(f'annotation file not found: {ann_file}', fatal=True)
        return report
    try:
        with open(ann_file, 'rb') as f:
            raw = f.read()
        data = json.loads(raw.decode('utf-8'))
    except UnicodeDecodeError as e:
        report.add(f'not UTF-8 text ({e.reason} at byte {e.start})', fatal=True)
        return report
    except json.JSONDecodeError as e:
        report.add(f'malformed JSON: {e.msg} at line {e.lineno} column {e.colno}', fatal=True)
        return report
    except (OSError, RecursionError, ValueError) as e:
        report.add(f'cannot read the file: {e}', fatal=True)
        return report
    if not isinstance(data, dict):
        report.add(f'top level must be a JSON object, got {type(data).__name__}', fatal=True)
        return report
    report.data = data
    for key in ('images', 'categories'):
        if not isinstance(data.get(key), list):
            report.add(f'"{key}" must be a list, got '
                       f'{type(data.get(key)).__name__ if key in data else "nothing"}',
                       fatal=True)
    if 'annotations' in data and not isinstance(data['annotations'], list):
        report.add('"annotations" must be a list', fatal=True)
    if report.fatal:
        return report

    # categories
    cats = {}
    for k, cat in enumerate(data['categories']):
        if not isinstance(cat, dict) or not _is_id(cat.get('id')):
            report.add(f'category #{k} has no integer id: {cat!r:.80}', fatal=True)
        elif cat['id'] in cats:
            report.add(f'duplicate category id {cat["id"]}', fatal=True)
        elif not isinstance(cat.get('name'), str):
            report.add(f'category id {cat["id"]} has no name string: {cat.get("name")!r:.40}',
                       fatal=True)
        else:
            cats[cat['id']] = cat.get('name')
    if classes is not None and not report.fatal:
        names = set(cats.values())
        absent = [c for c in classes if c not in names]
        if absent:
            report.add(f'config classes {absent} are not category names of this file '
                       f'(categories: {sorted(map(str, names))[:20]})', fatal=True)

    # images
    images = {}
    for k, img in enumerate(data['images']):
        if not isinstance(img, dict) or not _is_id(img.get('id')):
            report.add(f'image #{k} has no integer id: {img!r:.80}', fatal=True)
            continue
        iid = img['id']
        if iid in images:
            report.add('duplicate image id (the later entry is dropped)', image_id=iid)
            report.dup_image_idx.add(k)
            continue
        images[iid] = img
        w, h, name = img.get('width'), img.get('height'), img.get('file_name')
        if not (_is_id(w) and _is_id(h) and w > 0 and h > 0):
            report.add(f'width/height must be positive integers, got {w!r}/{h!r}', image_id=iid)
            report.bad_image_ids.add(iid)
            continue
        if not isinstance(name, str) or not name:
            report.add(f'file_name missing or empty: {name!r}', image_id=iid)
            report.bad_image_ids.add(iid)
            continue
        if check_files and img_dir is not None:
            path = osp.join(img_dir, name)
            if not osp.isfile(path):
                report.add(f'image file missing: {path}', image_id=iid)
                report.bad_image_ids.add(iid)
                continue
            size = _image_size(path)
            if size is False:
                report.add(f'image file cannot be read: {path}', image_id=iid)
                report.bad_image_ids.add(iid)
            elif size is not None and tuple(size) != (w, h):
                report.add(f'image file {name} is {size[0]}x{size[1]} but the json says '
                           f'{w}x{h}', image_id=iid)
                report.bad_image_ids.add(iid)
    if not data['images']:
        report.add('the file lists no images (an empty dataset)', fatal=True)
    elif 'annotations' in data and not data['annotations']:
        report.add('the "annotations" list is empty (no object to train on or to evaluate)',
                   fatal=True)
    elif not set(images) - report.bad_image_ids and not report.fatal:
        report.add('no usable image left (every image entry is invalid)', fatal=True)

    # annotations
    seen_ann = set()
    for k, ann in enumerate(data.get('annotations') or []):
        if not isinstance(ann, dict):
            report.add(f'annotation #{k} is not an object: {ann!r:.60}')
            report.bad_ann_idx.add(k)
            continue
        aid, iid = ann.get('id'), ann.get('image_id')
        aid_shown = aid if _is_id(aid) else f'#{k} (no integer id)'
        iid_shown = iid if _is_id(iid) else None

        def bad(message):
            report.add(message, image_id=iid_shown, ann_id=aid_shown)
            report.bad_ann_idx.add(k)

        if not _is_id(aid):
            bad(f'annotation id must be an integer, got {aid!r}')
            continue
        if aid in seen_ann:
            bad('duplicate annotation id (the later entry is dropped)')
            continue
        seen_ann.add(aid)
        if not _is_id(iid) or iid not in images:
            bad(f'image_id {iid!r} is not an image of this file')
            continue
        if iid in report.bad_image_ids:
            continue  # dropped with its image
        img = images[iid]
        width, height = img['width'], img['height']
        cid = ann.get('category_id')
        if not _is_id(cid) or cid not in cats:
            bad(f'unknown category_id {cid!r} (categories: {sorted(cats)[:20]})')
            continue
        if classes is not None and cats[cid] not in classes:
            report.excluded[cats[cid], cid] += 1
            bad(f'category {cats[cid]!r} (id {cid}) is not in the config\'s metainfo.classes')
            continue
        bbox = ann.get('bbox')
        if (not isinstance(bbox, list) or len(bbox) != 4
                or not all(_is_number(v) for v in bbox)):
            bad(f'bbox must be 4 finite numbers [x, y, w, h], got {bbox!r:.80}')
            continue
        x, y, w, h = bbox
        if w < 1 or h < 1:
            bad(f'degenerate bbox {bbox} (width and height must be at least 1 pixel)')
            continue
        if x < -tol or y < -tol or x + w > width + tol or y + h > height + tol:
            bad(f'bbox {bbox} extends outside the {width}x{height} image')
            continue
        if (min(x + w, width) - max(x, 0)) <= 0 or (min(y + h, height) - max(y, 0)) <= 0:
            bad(f'bbox {bbox} does not overlap the {width}x{height} image')
            continue
        area = ann.get('area')
        if not _is_number(area) or area <= 0:
            bad(f'area must be a positive number, got {area!r}')
            continue
        if ann.get('iscrowd', 0) not in (0, 1, False, True):
            bad(f'iscrowd must be 0 or 1, got {ann.get("iscrowd")!r}')
            continue
        reason = _check_segmentation(ann.get('segmentation'), width, height, tol, need_masks)
        if reason:
            bad(reason)
        elif ann.get('ignore'):
            report.ignored += 1
        elif ann.get('iscrowd'):
            report.crowd += 1
    return report


def clean_coco(report):
    """A copy of ``report.data`` without the bad images (and their annotations) and annotations."""
    data = report.data
    images = [img for k, img in enumerate(data['images'])
              if k not in report.dup_image_idx and img['id'] not in report.bad_image_ids]
    kept = {img['id'] for img in images}
    annotations = [ann for k, ann in enumerate(data.get('annotations') or [])
                   if k not in report.bad_ann_idx and ann.get('image_id') in kept]
    cleaned = dict(data)
    cleaned['images'] = images
    if 'annotations' in data:
        cleaned['annotations'] = annotations
    return cleaned
