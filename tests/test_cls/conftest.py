import pytest


@pytest.fixture(scope='session')
def tiny_digits(tmp_path_factory):
    """A tiny image folder written by the digits converter: 2 images per class and split."""
    from stm_mm.datasets import write_digits_imagefolder
    root = str(tmp_path_factory.mktemp('tiny_digits'))
    write_digits_imagefolder(root, size=32, per_class_limit=2)
    return root


@pytest.fixture(scope='session')
def one_digit_per_class(tmp_path_factory):
    """The smallest image folder: 1 image per class and split (one batch of 10)."""
    from stm_mm.datasets import write_digits_imagefolder
    root = str(tmp_path_factory.mktemp('one_digit_per_class'))
    write_digits_imagefolder(root, size=32, per_class_limit=1)
    return root


def data_options(root, batch_size, **extra):
    """``--cfg-options`` that point a digits config at ``root`` with a small, fixed loader."""
    options = {}
    for split in ('train', 'val', 'test'):
        options.update({
            f'{split}_dataloader.dataset.data_root': root,
            f'{split}_dataloader.batch_size': batch_size,
            f'{split}_dataloader.num_workers': 0,
            f'{split}_dataloader.persistent_workers': False,
        })
    options.update(extra)
    return options
