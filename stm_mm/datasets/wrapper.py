"""``DatasetWrapper``: the base of dataset wrappers that change item access only."""
from mmengine.registry import DATASETS


class DatasetWrapper:
    """Wrap ``dataset`` (a config or a dataset); everything but ``__getitem__`` is forwarded."""

    def __init__(self, dataset):
        self.dataset = DATASETS.build(dataset) if isinstance(dataset, dict) else dataset

    def __getattr__(self, name):
        if name == 'dataset' or name.startswith('__'):  # unpickling; dunder probes
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __len__(self):
        return len(self.dataset)

    def full_init(self):
        if hasattr(self.dataset, 'full_init'):
            self.dataset.full_init()

    def __getitem__(self, index):
        raise NotImplementedError
