"""The global RNG states (python, numpy, torch, CUDA): captured with a checkpoint, restored on
resume, so that an interrupted and resumed run ends with the uninterrupted run's weights."""
import functools
import random

import numpy as np
import torch


def rng_state():
    """The global RNG states as plain lists and tensors (storable in a weights-only checkpoint)."""
    py = random.getstate()
    npst = np.random.get_state()
    state = dict(
        python=[py[0], list(py[1]), py[2]],
        numpy=[npst[0], npst[1].tolist(), int(npst[2]), int(npst[3]), float(npst[4])],
        torch=torch.get_rng_state(),
    )
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state):
    """Restore what :func:`rng_state` returned (CUDA states only where CUDA is available)."""
    py = state['python']
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state['numpy']
    np.random.set_state((n[0], np.asarray(n[1], dtype=np.uint32), n[2], n[3], n[4]))
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available() and \
            len(state['cuda']) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state['cuda'])


def rng_isolated(fn):
    """``fn`` run with the RNG states saved before and restored after it."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        state = rng_state()
        try:
            return fn(*args, **kwargs)
        finally:
            set_rng_state(state)

    run.rng_isolated = True
    return run


class RestoreRngAfter:
    """Iterator proxy: after ``n`` items (the batches a resumed ``IterBasedTrainLoop`` skips),
    put the RNG back to ``state``, the one saved with the checkpoint."""

    def __init__(self, iterator, n, state):
        self._iterator, self._left, self._state = iterator, n, state

    def __iter__(self):
        return self

    def __next__(self):
        item = next(self._iterator)
        if self._state is not None:
            self._left -= 1
            if self._left <= 0:
                set_rng_state(self._state)
                self._state = None
        return item

    def __getattr__(self, name):
        return getattr(self._iterator, name)
