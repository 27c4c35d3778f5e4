"""``UnreadableImagesHook``: the images skipped with ``--skip-invalid``, gathered over the run.

The data-loader workers of every rank append the files they skip to one record file per split
and rank (:class:`~stm_mm.datasets.unreadable.SkipUnreadable`). Every ``interval`` training
iterations, at the end of each epoch and of each validation/test, this hook reads what is new,
gathers it from all ranks (every rank then holds the same list and takes the same decision),
logs each new path once and rewrites ``work_dir/skipped_images.txt`` (``split<TAB>path<TAB>
reason``, written by rank 0). A split with more than ``max_fraction`` of its images unreadable
stops the run. Validation and test metrics get a ``skipped_images`` entry, so the count is
reported next to them.
"""
import os.path as osp

from mmengine.dist import all_gather_object
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from ..errors import TooManyUnreadableError
from ..fileio import atomic_write_text

SKIPPED_FILE = 'skipped_images.txt'


def record_file(work_dir, split, rank):
    """Where the workers of ``rank`` append the ``split`` images they skip."""
    return osp.join(work_dir, '.skipped_images', f'{split}.rank{rank}.txt')


@HOOKS.register_module()
class UnreadableImagesHook(Hook):
    """Args: max_fraction (float): the largest tolerated share of unreadable images per split;
    interval (int): training iterations between two gatherings."""

    priority = 'HIGHEST'  # before RuntimeInfoHook logs the metrics

    def __init__(self, max_fraction=0.01, interval=20):
        self.max_fraction, self.interval = max_fraction, interval
        self.skipped = {}   # split -> {path: reason}, identical on every rank
        self._offsets = {}  # record file -> bytes already read

    def _read_new(self, runner, split):
        path = record_file(runner.work_dir, split, runner.rank)
        if not osp.isfile(path):
            return []
        with open(path, 'rb') as f:
            f.seek(self._offsets.get(path, 0))
            data = f.read()
        end = data.rfind(b'\n') + 1  # a line being written is read next time
        self._offsets[path] = self._offsets.get(path, 0) + end
        return [line.split('\t', 1) for line in data[:end].decode().splitlines()
                if '\t' in line]

    def gather(self, runner, split, dataset):
        """Collect the new records of ``split`` from every rank; raise over the threshold."""
        new = [item for part in all_gather_object(self._read_new(runner, split))
               for item in part]
        seen = self.skipped.setdefault(split, {})
        fresh = {path: reason for path, reason in new if path not in seen}
        if fresh:
            seen.update(fresh)
            for path, reason in sorted(fresh.items()):
                runner.logger.warning(f'{split}: skipped unreadable image {path} ({reason})')
            if runner.rank == 0:
                atomic_write_text(osp.join(runner.work_dir, SKIPPED_FILE), ''.join(
                    f'{s}\t{p}\t{r}\n' for s, items in sorted(self.skipped.items())
                    for p, r in sorted(items.items())))
        total = len(dataset) if dataset is not None else 0
        if total and len(seen) > self.max_fraction * total:
            raise TooManyUnreadableError(
                f'{len(seen)} of {total} {split} images ({100 * len(seen) / total:.2f}%) are '
                f'unreadable, more than reliability.max_unreadable={self.max_fraction:g}; they '
                f'are listed in {osp.join(runner.work_dir, SKIPPED_FILE)}; fix: repair or '
                'remove them (tools/analysis_tools/check_images.py finds them all), or raise '
                'reliability.max_unreadable')
        return len(seen)

    @staticmethod
    def _dataset(runner, split):
        loop = getattr(runner, f'{split}_loop', None)
        return getattr(getattr(loop, 'dataloader', None), 'dataset', None)

    def before_train(self, runner):
        self.gather(runner, 'train', self._dataset(runner, 'train'))  # from a skip list

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if self.every_n_train_iters(runner, self.interval):
            self.gather(runner, 'train', self._dataset(runner, 'train'))

    def after_train_epoch(self, runner):
        self.gather(runner, 'train', self._dataset(runner, 'train'))

    def after_train(self, runner):
        self.gather(runner, 'train', self._dataset(runner, 'train'))

    def _after_eval(self, runner, split, metrics):
        count = self.gather(runner, split, self._dataset(runner, split))
        if metrics is not None:
            metrics['skipped_images'] = count

    def after_val_epoch(self, runner, metrics=None):
        self._after_eval(runner, 'val', metrics)

    def after_test_epoch(self, runner, metrics=None):
        self._after_eval(runner, 'test', metrics)
