"""Images that cannot be decoded (issue 17): one clear error by default; with --skip-invalid a
deterministic replacement, a list of skipped files, a threshold, a count next to the metrics;
every decodable kind decodes to 3-channel BGR."""
import io
import os.path as osp
import re
import shutil

import numpy as np
import pytest
from PIL import Image

from stm_mm.datasets.image_loading import SafeLoadImageFromFile, decode_image
from stm_mm.datasets.unreadable import SkipUnreadable, substitute_index
from stm_mm.errors import UnreadableImageError

from ..helpers.tiny_training import (TEST_PY, TRAIN_PY, dump_cfg, expect_one_error, load_tool, log_text,
                     tiny_cfg)

# a 20x30 picture with distinct corners: red left band, green top band (RGB)
RGB = np.zeros((20, 30, 3), np.uint8)
RGB[:, :10, 0] = 200
RGB[:5, :, 1] = 100
BGR = RGB[..., ::-1]


def encode(img, fmt, **kw):
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _exif_rotated():
    """The picture stored turned 90 degrees anticlockwise, with EXIF orientation 6 (turn 90
    degrees clockwise to show it)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(Image.fromarray(np.rot90(RGB).copy()), 'JPEG', quality=100, subsampling=0,
                  exif=exif.tobytes())


def _jpeg(mode):
    return encode(Image.fromarray(RGB).convert(mode), 'JPEG', quality=100, subsampling=0)


KINDS = {  # name: (bytes, expected BGR image, tolerance)
    'png named .JPEG': (lambda: encode(Image.fromarray(RGB), 'PNG'), BGR, 0),
    'CMYK JPEG': (lambda: _jpeg('CMYK'), BGR, 3),
    'greyscale JPEG': (lambda: _jpeg('L'),
                       np.asarray(Image.fromarray(RGB).convert('L'))[..., None].repeat(3, 2), 3),
    '16-bit PNG': (lambda: encode(Image.fromarray(RGB[..., 0].astype(np.uint16) * 257), 'PNG'),
                   RGB[..., :1].repeat(3, 2), 0),
    'EXIF-rotated JPEG': (_exif_rotated, BGR, 3),
}


@pytest.mark.parametrize('backend', ['cv2', 'pillow'])
@pytest.mark.parametrize('kind', list(KINDS))
def test_decodable_kinds_load_as_3_channel_bgr(tmp_path, kind, backend):
    make, expected, tol = KINDS[kind]
    path = tmp_path / 'n01440764_10026.JPEG'
    path.write_bytes(make())
    out = SafeLoadImageFromFile(imdecode_backend=backend).transform(dict(img_path=str(path)))
    img = out['img']
    assert img.dtype == np.uint8 and img.shape == (20, 30, 3), img.shape
    assert out['ori_shape'] == (20, 30)
    assert int(np.abs(img.astype(int) - expected.astype(int)).max()) <= tol


def _truncated_png():
    return encode(Image.fromarray(RGB), 'PNG')[:40]


def _truncated_jpeg():
    data = encode(Image.fromarray(RGB), 'JPEG')
    return data[:len(data) * 2 // 3]


@pytest.mark.parametrize('content, reason', [
    (_truncated_png, 'truncated PNG (40 bytes, no IEND chunk)'),
    (_truncated_jpeg, 'truncated JPEG ('),
    (lambda: b'not an image', "not an image file (content starts with b'not an image')"),
    (lambda: b'', 'empty file (0 bytes)'),
])
def test_undecodable_content_is_named(content, reason):
    with pytest.raises(UnreadableImageError) as info:
        decode_image(content(), '/data/x.png')
    assert info.value.path == '/data/x.png'
    assert info.value.reason.startswith(reason), info.value.reason
    assert str(info.value).startswith(f'image /data/x.png cannot be decoded: {reason}')
    assert str(info.value).endswith('fix: replace or delete the file, or pass --skip-invalid '
                                    'to skip unreadable images (listed in '
                                    'work_dir/skipped_images.txt)')


def test_missing_file_is_named(tmp_path):
    with pytest.raises(UnreadableImageError, match='file not found .deleted or moved after'):
        SafeLoadImageFromFile().transform(dict(img_path=str(tmp_path / 'gone.png')))


def test_substitute_is_deterministic_and_another_index():
    picks = [substitute_index(i, a, 7) for i in range(7) for a in range(4)]
    assert picks == [substitute_index(i, a, 7) for i in range(7) for a in range(4)]
    assert all(p != i and 0 <= p < 7 for p, i in zip(picks, np.repeat(range(7), 4)))
    assert len(set(picks)) > 1


class _Items:
    """A dataset whose items 2 and 5 are unreadable."""

    def __init__(self):
        self.metainfo = dict(classes=('a', ))

    def __len__(self):
        return 8

    def __getitem__(self, i):
        if i in (2, 5):
            raise UnreadableImageError.of(f'/d/{i}.png', 'empty file (0 bytes)')
        return i

    def get_data_info(self, i):
        return dict(img_path=f'/d/{i}.png')


def test_skip_unreadable_wrapper(tmp_path):
    record = str(tmp_path / 'rec.txt')
    ds = SkipUnreadable(_Items(), record)
    ds.full_init()
    items = [ds[i] for i in range(8)]
    assert items == [ds[i] for i in range(8)]  # the same replacement every time
    assert [items[i] for i in (0, 1, 3, 4, 6, 7)] == [0, 1, 3, 4, 6, 7]
    assert items[2] not in (2, 5) and items[5] not in (2, 5)
    assert len(ds) == 8 and ds.metainfo == dict(classes=('a', ))  # forwarded
    fresh = SkipUnreadable(_Items(), record)  # a new data-loader worker, next epoch
    assert [fresh[i] for i in range(8)] == items
    with open(record) as f:  # each file recorded once
        assert f.read().splitlines() == ['/d/2.png\tempty file (0 bytes)',
                                         '/d/5.png\tempty file (0 bytes)']
    # a skip list: listed files are recorded at once and never read
    listed = tmp_path / 'list.txt'
    listed.write_text('/d/2.png\tunreadable\n/d/5.png\n')
    record2 = str(tmp_path / 'rec2.txt')
    ds2 = SkipUnreadable(_Items(), record2, skip_list=str(listed))
    ds2.full_init()
    with open(record2) as f:
        assert [ln.split('\t')[0] for ln in f.read().splitlines()] == ['/d/2.png', '/d/5.png']
    assert [ds2[i] for i in range(8)] == items


# ----------------------------------------------------------------------------- whole runs
@pytest.fixture(scope='module')
def cli():
    return load_tool(TRAIN_PY)


FAULTS = {
    'truncated': ('train/a/003.png', _truncated_png, 'truncated PNG (40 bytes, no IEND chunk)'),
    'text file': ('train/b/zzzz.png', lambda: b'not an image',
                  "not an image file (content starts with b'not an image')"),
    'zero-byte': ('train/a/005.png', lambda: b'', 'empty file (0 bytes)'),
}


def _with_bad_file(image_folder, tmp_path, relpath, content):
    root = str(tmp_path / 'data')
    shutil.copytree(image_folder, root)
    path = osp.join(root, relpath)
    with open(path, 'wb') as f:
        f.write(content())
    return root, path


def _config(tmp_path, root, **kw):
    kw.setdefault('max_iters', 4)
    kw.setdefault('ckpt_interval', 4)
    return dump_cfg(tiny_cfg(root, str(tmp_path / 'work'), **kw), str(tmp_path / 'cfg.py'))


@pytest.mark.parametrize('fault, workers', [('truncated', 1), ('text file', 0),
                                            ('zero-byte', 0)])
def test_bad_image_is_one_error_line(cli, capsys, image_folder, tmp_path, fault, workers):
    """Read in a data-loader worker (PyTorch re-raises the error as "Caught ... in DataLoader
    worker process 0" with the worker's traceback) or in the main process: one line."""
    relpath, content, reason = FAULTS[fault]
    root, path = _with_bad_file(image_folder, tmp_path, relpath, content)
    cfg = _config(tmp_path, root, train_dataloader=dict(num_workers=workers))
    message = expect_one_error(cli.main, capsys, [cfg])
    assert message == (f'image {path} cannot be decoded: {reason}; fix: replace or delete the '
                       'file, or pass --skip-invalid to skip unreadable images (listed in '
                       'work_dir/skipped_images.txt)')


def test_file_deleted_after_validation(cli, capsys, image_folder, tmp_path):
    root = str(tmp_path / 'data')
    shutil.copytree(image_folder, root)
    path = osp.join(root, 'train', 'b', '002.png')
    cfg = _config(tmp_path, root, custom_hooks=[dict(type='DeleteFileHook', path=path)])
    message = expect_one_error(cli.main, capsys, [cfg])
    assert message.startswith(f'image {path} cannot be decoded: file not found (deleted or '
                              'moved after the dataset was listed); fix: '), message


def test_skip_invalid_replaces_logs_and_lists(cli, image_folder, tmp_path):
    """16 train images, one truncated: a 6 % share, under the raised threshold of 10 %."""
    root, path = _with_bad_file(image_folder, tmp_path, *FAULTS['truncated'][:2])
    cfg = _config(tmp_path, root, max_iters=8, ckpt_interval=8)
    cli.main([cfg, '--skip-invalid', '--cfg-options', 'reliability.max_unreadable=0.1'])
    work = str(tmp_path / 'work')
    assert osp.isfile(osp.join(work, 'iter_8.pth'))
    with open(osp.join(work, 'skipped_images.txt')) as f:
        assert f.read() == f'train\t{path}\ttruncated PNG (40 bytes, no IEND chunk)\n'
    # 8 iterations of 4 read the 16 images twice: logged once
    log = log_text(work)
    assert log.count(f'train: skipped unreadable image {path} (truncated PNG') == 1, log[-3000:]


def test_over_the_threshold(cli, capsys, image_folder, tmp_path):
    """The default max_unreadable is 1 %: one bad image of 16 stops the run."""
    root, path = _with_bad_file(image_folder, tmp_path, *FAULTS['zero-byte'][:2])
    message = expect_one_error(cli.main, capsys, [_config(tmp_path, root), '--skip-invalid'])
    work = str(tmp_path / 'work')
    assert message == (f'1 of 16 train images (6.25%) are unreadable, more than '
                       f'reliability.max_unreadable=0.01; they are listed in {work}/'
                       'skipped_images.txt; fix: repair or remove them (tools/analysis_tools/'
                       'check_images.py finds them all), or raise reliability.max_unreadable')


def test_in_validation(cli, capsys, image_folder, tmp_path):
    """A bad validation image: an error by default; with --skip-invalid the count is reported
    next to the metrics and the image is listed."""
    root, path = _with_bad_file(image_folder, tmp_path, 'val/b/001.png', lambda: b'GIF89a\0')
    cfg = _config(tmp_path, root, max_iters=2, ckpt_interval=2, val_interval=2)
    message = expect_one_error(cli.main, capsys, [cfg])
    assert message.startswith(f'image {path} cannot be decoded: GIF data cannot be decoded '
                              '(7 bytes)'), message
    cli.main([cfg, '--skip-invalid', '--cfg-options', 'reliability.max_unreadable=0.5'])
    work = str(tmp_path / 'work')
    log = log_text(work)
    assert re.search(r'accuracy/top1: \d+\.\d+  skipped_images: 1', log), log[-2000:]
    with open(osp.join(work, 'skipped_images.txt')) as f:
        assert f.read().startswith(f'val\t{path}\tGIF data cannot be decoded (7 bytes)')


def test_test_tool_counts_skipped_images(image_folder, tmp_path, reference_run, capsys):
    """tools/test.py --skip-invalid prints the count with the metrics."""
    root, path = _with_bad_file(image_folder, tmp_path, 'val/a/000.png', lambda: b'')
    cfg = tiny_cfg(root, str(tmp_path / 'work'), val_interval=2)
    cfg.merge_from_dict(dict(test_dataloader=cfg.val_dataloader, test_cfg=dict(),
                             test_evaluator=cfg.val_evaluator))
    cfg = dump_cfg(cfg, str(tmp_path / 'cfg.py'))
    tool = load_tool(TEST_PY)
    ckpt = osp.join(reference_run, 'iter_2.pth')
    message = expect_one_error(tool.main, capsys, [cfg, ckpt])
    assert message.startswith(f'image {path} cannot be decoded: empty file'), message
    tool.main([cfg, ckpt, '--skip-invalid', '--cfg-options', 'reliability.max_unreadable=0.5'])
    out = capsys.readouterr().out
    assert "'skipped_images': 1" in out, out[-2000:]


def test_check_images_tool_and_skip_list(cli, capsys, image_folder, tmp_path):
    """The deep pre-flight lists the bad files; --skip-list makes training skip them unread."""
    root, path = _with_bad_file(image_folder, tmp_path, *FAULTS['truncated'][:2])
    cfg = _config(tmp_path, root, max_iters=2, ckpt_interval=2)
    tool = load_tool(osp.join(osp.dirname(TRAIN_PY), 'analysis_tools', 'check_images.py'))
    listed = str(tmp_path / 'bad.txt')
    with pytest.raises(SystemExit) as info:
        tool.main([cfg, '--workers', '2', '--out', listed])
    assert info.value.code == 1
    assert '1 of 16 images cannot be decoded' in capsys.readouterr().out
    with open(listed) as f:
        assert f.read() == f'{path}\ttruncated PNG (40 bytes, no IEND chunk)\n'
    cli.main([cfg, '--skip-list', listed, '--cfg-options', 'reliability.max_unreadable=0.1'])
    with open(str(tmp_path / 'work' / 'skipped_images.txt')) as f:
        assert f.read() == f'train\t{path}\tlisted in {listed}\n'  # not read: no decode error


def png_bomb(side=30000):
    """A real ``side`` x ``side`` RGB PNG of zeros (~3 MB; 2.7 GB decoded for 30000): each row
    is the same deflate block after a full flush, so nothing of that size is ever built."""
    import struct
    import zlib

    def chunk(kind, data):
        return (struct.pack('>I', len(data)) + kind + data
                + struct.pack('>I', zlib.crc32(kind + data)))
    row = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = row.compress(bytes(1 + 3 * side)) + row.flush(zlib.Z_FULL_FLUSH)
    end = zlib.compressobj(9, zlib.DEFLATED, -15).flush(zlib.Z_FINISH)
    adler = (((side * (1 + 3 * side)) % 65521) << 16) | 1  # adler32 of that many zeros
    idat = b'\x78\xda' + block * side + end + struct.pack('>I', adler)
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', side, side, 8, 2, 0,
                                                               0, 0))
            + chunk(b'IDAT', idat) + chunk(b'IEND', b''))


def test_pixel_limit_is_checked_from_the_header(monkeypatch, tmp_path):
    import mmcv
    small = png_bomb(40)
    assert decode_image(small).shape == (40, 40, 3)  # the construction is a valid PNG
    jpeg = bytearray(encode(Image.fromarray(RGB), 'JPEG'))
    sof = jpeg.index(b'\xff\xc0')
    jpeg[sof + 5:sof + 9] = (20000).to_bytes(2, 'big') * 2
    path = tmp_path / 'small.png'
    path.write_bytes(small)
    monkeypatch.setattr(mmcv, 'imfrombytes', lambda *a, **k: pytest.fail('decoded'))
    bomb = png_bomb()
    with pytest.raises(UnreadableImageError) as info:
        decode_image(bomb, 'bomb.png')
    assert str(info.value).startswith(
        f'image bomb.png cannot be decoded: PNG of 30000x30000 = 900 M pixels ({len(bomb)} '
        'bytes), over the limit of 89.5 M pixels (a decompression bomb, or raise '
        'reliability.max_image_pixels); fix: replace or delete the file, or pass '
        '--skip-invalid')
    with pytest.raises(UnreadableImageError, match='JPEG of 20000x20000 = 400 M pixels'):
        decode_image(bytes(jpeg), 'big.jpg')
    with pytest.raises(UnreadableImageError, match='PNG of 40x40 = 0 M pixels .* limit of '
                       r'0\.0 M'):
        SafeLoadImageFromFile(max_pixels=1000).transform(dict(img_path=str(path)))


def test_bomb_is_skipped_with_skip_invalid(cli, image_folder, tmp_path):
    root, path = _with_bad_file(image_folder, tmp_path, 'train/a/004.png', png_bomb)
    cfg = _config(tmp_path, root, train_dataloader=dict(num_workers=1))
    cli.main([cfg, '--skip-invalid', '--cfg-options', 'reliability.max_unreadable=0.1'])
    with open(osp.join(str(tmp_path / 'work'), 'skipped_images.txt')) as f:
        assert f.read().startswith(f'train\t{path}\tPNG of 30000x30000 = 900 M pixels')
