"""Image decoding that names what is wrong with a file, and decodes every decodable kind.

:func:`decode_image` decodes bytes through mmcv's ``imfrombytes`` (the backend mmcv, mmpretrain
and mmdet use) after looking at the content:

* the format is taken from the bytes, not the name (ImageNet has a PNG saved as ``.JPEG``);
* an empty file, a file that is no image, a JPEG without its end-of-image marker and a PNG
  without its ``IEND`` chunk raise :class:`UnreadableImageError` (OpenCV decodes a truncated
  JPEG without an error, filling the missing part with grey);
* the result of ``color_type='color'`` is always ``(H, W, 3)`` uint8: greyscale, CMYK,
  palette, alpha and 16-bit images are converted, EXIF orientation is applied.

:class:`SafeLoadImageFromFile` is mmcv's ``LoadImageFromFile`` using it; the runner puts it in
place of ``LoadImageFromFile`` in every pipeline (see :mod:`stm_mm.engine.runner`); it is
registered in MMEngine's root ``TRANSFORMS``, so mmpretrain and mmdet configs can name it too.
"""
import cv2
import mmcv
import numpy as np
from mmcv.transforms import LoadImageFromFile
from mmengine import fileio
from mmengine.registry import TRANSFORMS

from .validation import DataValidationError

SKIP_HINT = ('fix: replace or delete the file, or pass --skip-invalid to skip unreadable '
             'images (listed in work_dir/skipped_images.txt)')

_SIGNATURES = (
    (b'\xff\xd8\xff', 'jpeg'), (b'\x89PNG\r\n\x1a\n', 'png'), (b'GIF87a', 'gif'),
    (b'GIF89a', 'gif'), (b'BM', 'bmp'), (b'II*\x00', 'tiff'), (b'MM\x00*', 'tiff'),
)


class UnreadableImageError(DataValidationError):
    """An image file that cannot be decoded. ``path`` and ``reason`` are set when known."""

    def __init__(self, message, path=None, reason=None):
        super().__init__(message)
        self.path, self.reason = path, reason

    @classmethod
    def of(cls, path, reason):
        return cls(f'image {path} cannot be decoded: {reason}; {SKIP_HINT}', path, reason)


def image_kind(content):
    """The format of ``content`` from its first bytes ('jpeg', 'png', ...), or None."""
    for signature, kind in _SIGNATURES:
        if content.startswith(signature):
            return kind
    if content[:4] == b'RIFF' and content[8:12] == b'WEBP':
        return 'webp'
    if len(content) > 2 and content[:1] == b'P' and content[1:2] in b'123456' and \
            content[2:3].isspace():
        return 'pnm'
    return None


def truncation(kind, content):
    """Why ``content`` of format ``kind`` is incomplete, or None."""
    if kind == 'jpeg':
        # entropy-coded data escape 0xFF bytes, so an end-of-image marker after the last
        # start-of-scan marker is the end of the main image (not of an EXIF thumbnail)
        if content.rfind(b'\xff\xd9') < max(content.rfind(b'\xff\xda'), 2):
            return f'truncated JPEG ({len(content)} bytes, no end-of-image marker)'
    elif kind == 'png' and content.rfind(b'IEND') < 0:
        return f'truncated PNG ({len(content)} bytes, no IEND chunk)'
    return None


def _to_uint8(img):
    if img.dtype == np.uint16:
        return (img >> 8).astype(np.uint8)
    if img.dtype != np.uint8:
        raise ValueError(f'unsupported sample type {img.dtype}')
    return img


def decode_image(content, path='<bytes>', color_type='color', backend='cv2'):
    """Decode ``content`` like ``mmcv.imfrombytes(content, color_type, backend=backend)``.

    Returns ``(H, W, 3)`` BGR uint8 for ``color_type='color'`` (``(H, W)`` for 'grayscale'; other
    flags as mmcv returns them). Raises :class:`UnreadableImageError` naming ``path``.
    """
    if not content:
        raise UnreadableImageError.of(path, 'empty file (0 bytes)')
    kind = image_kind(content)
    if kind is None:
        raise UnreadableImageError.of(path, f'not an image file (content starts with '
                                            f'{bytes(content[:16])!r})')
    reason = truncation(kind, content)
    if reason:
        raise UnreadableImageError.of(path, reason)
    if backend == 'turbojpeg' and kind != 'jpeg':
        backend = 'cv2'  # a PNG (or other) under a .jpg name
    elif backend == 'pillow' and kind == 'png' and content[24:25] == b'\x10':
        backend = 'cv2'  # Pillow clips 16-bit samples to 255 when converting to RGB
    level = cv2.utils.logging.getLogLevel()
    # silent: OpenCV would print its own multi-line message for corrupt data
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        img = mmcv.imfrombytes(content, flag=color_type, backend=backend)
    except Exception as e:  # noqa: B902 - any decoder failure is reported the same way
        img, error = None, f' [{type(e).__name__}: {e}]'
    else:
        error = ''
    finally:
        cv2.utils.logging.setLogLevel(level)
    if img is None or img.size == 0:
        raise UnreadableImageError.of(
            path, f'{kind.upper()} data cannot be decoded ({len(content)} bytes){error}')
    if color_type == 'color':
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        elif img.shape[2] == 4:
            img = img[..., :3]
        img = np.ascontiguousarray(_to_uint8(img))
    return img


def load_image_file(path, color_type='color', backend='cv2', read=None):
    """Read ``path`` (with ``read(path) -> bytes``, default a local read) and decode it with
    :func:`decode_image`; every failure is an :class:`UnreadableImageError` naming the file."""
    try:
        if read is None:
            with open(path, 'rb') as f:
                content = f.read()
        else:
            content = read(path)
    except FileNotFoundError:
        raise UnreadableImageError.of(
            path, 'file not found (deleted or moved after the dataset was listed)') from None
    except OSError as e:
        raise UnreadableImageError.of(path, f'cannot be read ({e.strerror or e})') from None
    return decode_image(content, path, color_type, backend)


def image_problem(path, color_type='color', backend='cv2'):
    """``(path, reason)``: why the local file ``path`` cannot be decoded, or ``(path, None)``."""
    try:
        load_image_file(path, color_type, backend)
    except UnreadableImageError as e:
        return path, e.reason
    return path, None


@TRANSFORMS.register_module()
class SafeLoadImageFromFile(LoadImageFromFile):
    """mmcv's ``LoadImageFromFile`` through :func:`decode_image`: same arguments and output;
    unreadable files raise :class:`UnreadableImageError` (with ``ignore_empty``: None)."""

    def _read(self, filename):
        if self.file_client_args is not None:
            return fileio.FileClient.infer_client(self.file_client_args,
                                                  filename).get(filename)
        return fileio.get(filename, backend_args=self.backend_args)

    def transform(self, results):
        filename = results['img_path']
        try:
            img = load_image_file(filename, self.color_type, self.imdecode_backend, self._read)
        except UnreadableImageError:
            if self.ignore_empty:
                return None
            raise
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results
