"""Image decoding that names what is wrong with a file, and decodes every decodable kind.

:func:`decode_image` decodes bytes through mmcv's ``imfrombytes`` (the backend mmcv, mmpretrain
and mmdet use) after looking at the content:

* the format is taken from the bytes, not the name (ImageNet has a PNG saved as ``.JPEG``);
* an empty file, a file that is no image, a JPEG without its end-of-image marker and a PNG
  without its ``IEND`` chunk raise :class:`UnreadableImageError` (OpenCV decodes a truncated
  JPEG without an error, filling the missing part with grey);
* the result of ``color_type='color'`` is always ``(H, W, 3)`` uint8: greyscale, CMYK,
  palette, alpha and 16-bit images are converted, EXIF orientation is applied;
* an image of more than ``max_pixels`` pixels (default :data:`MAX_PIXELS`, Pillow's limit) is
  unreadable: its size is read from the header before anything is decoded, so a small file
  that would decode to gigabytes (a decompression bomb) costs nothing.

:class:`SafeLoadImageFromFile` is mmcv's ``LoadImageFromFile`` using it; the runner puts it in
place of ``LoadImageFromFile`` in every pipeline (see :mod:`stm_mm.engine.runner`); it is
registered in MMEngine's root ``TRANSFORMS``, so mmpretrain and mmdet configs can name it too.
"""
import io
import struct
import warnings

import cv2
import mmcv
import numpy as np
from mmcv.transforms import LoadImageFromFile
from mmengine import fileio
from mmengine.registry import TRANSFORMS

from ..errors import UnreadableImageError

MAX_PIXELS = 89_478_485  # Pillow's Image.MAX_IMAGE_PIXELS: 1024 * 1024 * 1024 // 4 // 3

_SIGNATURES = (
    (b'\xff\xd8\xff', 'jpeg'), (b'\x89PNG\r\n\x1a\n', 'png'), (b'GIF87a', 'gif'),
    (b'GIF89a', 'gif'), (b'BM', 'bmp'), (b'II*\x00', 'tiff'), (b'MM\x00*', 'tiff'),
)


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


def _jpeg_size(content):
    """``(width, height)`` from the first start-of-frame marker, or None."""
    pos = 2
    while pos + 9 <= len(content):
        if content[pos] != 0xFF:
            return None
        marker = content[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack('>HH', content[pos + 5:pos + 9])
            return width, height
        if marker == 0xD8 or 0xD0 <= marker <= 0xD7:  # no length
            pos += 2
            continue
        pos += 2 + struct.unpack('>H', content[pos + 2:pos + 4])[0]
    return None


def image_size(kind, content):
    """``(width, height)`` read from the header of ``content`` without decoding, or None."""
    if kind == 'png' and len(content) >= 24:
        return struct.unpack('>II', content[16:24])
    if kind == 'jpeg':
        return _jpeg_size(content)
    if kind == 'gif' and len(content) >= 10:
        return struct.unpack('<HH', content[6:10])
    if kind == 'bmp' and len(content) >= 26:
        width, height = struct.unpack('<ii', content[18:26])
        return abs(width), abs(height)
    from PIL import Image  # tiff, webp, pnm: Pillow's open reads the header only
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', Image.DecompressionBombWarning)
        try:
            return Image.open(io.BytesIO(content)).size
        except Image.DecompressionBombError:
            return float('inf'), 1
        except Exception:  # noqa: B902 - the decoder reports the file
            return None


def _to_uint8(img):
    if img.dtype == np.uint16:
        return (img >> 8).astype(np.uint8)
    if img.dtype != np.uint8:
        raise ValueError(f'unsupported sample type {img.dtype}')
    return img


def decode_image(content, path='<bytes>', color_type='color', backend='cv2',
                 max_pixels=MAX_PIXELS):
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
    size = image_size(kind, content)
    if size is not None and max_pixels and size[0] * size[1] > max_pixels:
        shown = 'more than 2x the limit' if size[0] == float('inf') else \
            f'{size[0]}x{size[1]} = {size[0] * size[1] / 1e6:.0f} M pixels'
        raise UnreadableImageError.of(
            path, f'{kind.upper()} of {shown} ({len(content)} bytes), over the limit of '
            f'{max_pixels / 1e6:.1f} M pixels (a decompression bomb, or raise '
            'reliability.max_image_pixels)')
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


def load_image_file(path, color_type='color', backend='cv2', read=None, max_pixels=MAX_PIXELS):
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
    return decode_image(content, path, color_type, backend, max_pixels)


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
    unreadable files raise :class:`UnreadableImageError` (with ``ignore_empty``: None).
    ``max_pixels``: larger images are unreadable (None: no limit)."""

    def __init__(self, *args, max_pixels=MAX_PIXELS, **kwargs):
        super().__init__(*args, **kwargs)
        self.max_pixels = max_pixels

    def _read(self, filename):
        if self.file_client_args is not None:
            return fileio.FileClient.infer_client(self.file_client_args,
                                                  filename).get(filename)
        return fileio.get(filename, backend_args=self.backend_args)

    def transform(self, results):
        filename = results['img_path']
        try:
            img = load_image_file(filename, self.color_type, self.imdecode_backend, self._read,
                                  self.max_pixels)
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
