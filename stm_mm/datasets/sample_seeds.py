"""Per-sample random seeds: data augmentation that does not depend on a process's history.

A data-loader worker's random streams (python, numpy, torch) depend on everything the worker
transformed before. With ``persistent_workers`` they carry over from epoch to epoch, so after a
resume (fresh workers) the augmentations differed from those of the uninterrupted run; they also
changed with ``num_workers``. Here each sample's transforms run with the three streams seeded
from ``(seed, rank, epoch, position)`` instead:

* :class:`SeededSampler` wraps a run's sampler and yields :class:`SampleIndex` values: ints that
  carry that key (the epoch is the one ``set_epoch`` gave, the position counts the indices
  yielded since the sampler was last iterated);
* :class:`SeededSamples` wraps the dataset: ``dataset[i]`` runs with the streams seeded from
  ``i.key`` and puts the previous states back afterwards, so in the main process
  (``num_workers=0``) training's own random numbers are not disturbed;
* :class:`RngNeutralDataLoader`: ``iter(loader)`` draws its workers' base seed from torch's
  global RNG, but only when it starts workers: once per run with ``persistent_workers``, so a
  resumed run drew once more than the uninterrupted one and its drop-path masks differed. This
  loader puts the global state back after ``iter``.

The ``n``-th sample of an epoch is thus augmented the same way with 0 or 8 workers, persistent
or not, interrupted or not.
"""
import random

import numpy as np
import torch
from mmengine.dist import get_dist_info
from mmengine.registry import DATA_SAMPLERS, DATASETS
from torch.utils.data import DataLoader, Sampler

from .wrapper import DatasetWrapper


class SampleIndex(int):
    """A dataset index carrying ``key = (seed, rank, epoch, position)``."""

    def __new__(cls, index, key):
        self = super().__new__(cls, index)
        self.key = key
        return self

    def __reduce__(self):  # to the data-loader workers
        return SampleIndex, (int(self), self.key)


def seeds_of(key):
    """``(python, numpy, torch)`` seeds of a sample key: independent streams per key."""
    w = [int(x) for x in np.random.SeedSequence([int(k) & 0xFFFFFFFF for k in key])
         .generate_state(4)]
    return (w[0] << 32) | w[1], w[2], (w[2] << 32) | w[3]


class SeededSampler(Sampler):
    """Wrap a sampler (config or object); yields :class:`SampleIndex` values.

    Args:
        sampler: the sampler, or its config (built with ``dataset`` and ``seed``).
        dataset: the dataset (passed on to a sampler config).
        seed (int, optional): the run's seed; None (``diff_rank_seed``) uses the sampler's.
    """

    def __init__(self, sampler, dataset=None, seed=None):
        if isinstance(sampler, dict):
            sampler = DATA_SAMPLERS.build(sampler, default_args=dict(dataset=dataset, seed=seed))
        self.sampler = sampler
        self.seed = seed if seed is not None else getattr(sampler, 'seed', 0) or 0
        self.rank = get_dist_info()[0]
        self.epoch = 0

    def __getattr__(self, name):
        if name == 'sampler':  # not yet set (unpickling)
            raise AttributeError(name)
        return getattr(self.sampler, name)

    def set_epoch(self, epoch):
        self.epoch = epoch
        if hasattr(self.sampler, 'set_epoch'):
            self.sampler.set_epoch(epoch)

    def __len__(self):
        return len(self.sampler)

    def __iter__(self):
        for position, index in enumerate(self.sampler):
            yield SampleIndex(index, (self.seed, self.rank, self.epoch, position))


@DATASETS.register_module()
class SeededSamples(DatasetWrapper):
    """Wrap ``dataset`` (a config or a dataset): each :class:`SampleIndex` item is produced with
    python's, numpy's and torch's (CPU) global RNGs seeded from its key; the previous states are
    restored afterwards. Plain int indices are passed through unseeded."""

    def __getitem__(self, index):
        key = getattr(index, 'key', None)
        if key is None:
            return self.dataset[index]
        py_state, np_state = random.getstate(), np.random.get_state()
        torch_state = torch.default_generator.get_state()
        py_seed, np_seed, torch_seed = seeds_of(key)
        random.seed(py_seed)
        np.random.seed(np_seed)
        torch.default_generator.manual_seed(torch_seed)
        try:
            return self.dataset[int(index)]
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
            torch.default_generator.set_state(torch_state)


class RngNeutralDataLoader(DataLoader):
    """A ``DataLoader`` whose ``iter()`` leaves torch's global RNG as it was."""

    def __iter__(self):
        state = torch.default_generator.get_state()
        try:
            return super().__iter__()
        finally:
            torch.default_generator.set_state(state)
