"""Config options for the digits classification tests."""


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
