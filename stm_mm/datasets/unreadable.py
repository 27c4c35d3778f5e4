"""``SkipUnreadable``: a dataset wrapper that replaces a sample whose image cannot be decoded.

The replacement is another sample of the same dataset, chosen by a hash of the index (and of
the attempt, should the replacement be unreadable too), never by the global RNG. The batch size
stays the same, the random number streams are not touched, and a resumed run reads the same
samples as the uninterrupted one.

Each skipped file is appended once as ``path<TAB>reason`` to ``record_file`` (one file per
rank, shared by that rank's data-loader workers); :class:`~stm_mm.engine.unreadable_images.
UnreadableImagesHook` gathers the files of all ranks, logs each path once, writes
``work_dir/skipped_images.txt`` and stops a run with too many unreadable images.

Files listed in ``skip_list`` (written by ``tools/analysis_tools/check_images.py``) are
skipped without being read and recorded when the dataset is initialised.
"""
import os
import os.path as osp
import zlib

from mmengine.registry import DATASETS

from ..errors import DataValidationError, UnreadableImageError
from .wrapper import DatasetWrapper


def substitute_index(index, attempt, length):
    """A deterministic index ``!= index`` in ``range(length)`` (``length`` > 1)."""
    step = zlib.crc32(f'{index}:{attempt}'.encode()) % (length - 1)
    return (index + 1 + step) % length


def read_skip_list(path):
    """The image paths of a list file: one per line, anything after a tab ignored."""
    with open(path) as f:
        return {line.split('\t')[0].strip() for line in f if line.strip()}


def append_record(record_file, path, reason):
    """Append one ``path<TAB>reason`` line (a single write: safe from several processes)."""
    os.makedirs(osp.dirname(osp.abspath(record_file)), exist_ok=True)
    reason = ' '.join(str(reason).split())
    with open(record_file, 'a') as f:
        f.write(f'{path}\t{reason}\n')


@DATASETS.register_module()
class SkipUnreadable(DatasetWrapper):
    """Wrap ``dataset`` (a config or a dataset); everything but item access is forwarded.

    Args:
        dataset: the dataset config or object.
        record_file (str): where skipped files are appended.
        skip_list (str, optional): a file of image paths to skip without reading them.
        max_tries (int): replacements tried for one index before giving up.
    """

    def __init__(self, dataset, record_file, skip_list=None, max_tries=16):
        super().__init__(dataset)
        self.record_file, self.skip_list, self.max_tries = record_file, skip_list, max_tries
        self._known_bad = None
        self._recorded = None  # paths already in record_file (read once per process)

    def full_init(self):
        super().full_init()
        self._known_bad = set()
        if self.skip_list:
            listed = read_skip_list(self.skip_list)
            for i in range(len(self.dataset)):
                path = self.dataset.get_data_info(i).get('img_path')
                if path in listed:
                    self._known_bad.add(i)
                    self._record(path, f'listed in {self.skip_list}')

    def _record(self, path, reason):
        """Append ``path`` unless it is recorded already (by this run, in any process: fresh
        data-loader workers of every epoch would repeat it otherwise)."""
        if self._recorded is None:
            self._recorded = (read_skip_list(self.record_file) if osp.isfile(self.record_file)
                              else set())
        if path not in self._recorded:
            self._recorded.add(path)
            append_record(self.record_file, path, reason)

    def __getitem__(self, index):
        if self._known_bad is None:
            self.full_init()
        length = len(self.dataset)
        current = index
        for attempt in range(self.max_tries):
            if current not in self._known_bad:
                try:
                    return self.dataset[current]
                except UnreadableImageError as e:
                    self._known_bad.add(current)
                    self._record(e.path, e.reason)
            if length < 2:
                break
            current = substitute_index(index, attempt, length)
        raise DataValidationError(
            f'sample {index} and {self.max_tries - 1} replacement(s) are all unreadable (see '
            f'{self.record_file}); fix: repair the dataset (tools/analysis_tools/'
            'check_images.py lists every unreadable image)')
