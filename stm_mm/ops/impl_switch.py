"""One implementation switch for every op that has several implementations.

Each op (``halo``, ``swin``, ``dcnv3``) names its implementations; the choice comes from the
caller's ``impl`` argument (a mixer's ``stm_cfg``), else the environment variable
``STM_MM_<OP>_IMPL``, else ``'auto'``, which each op resolves by device (the Triton kernels on
CUDA, the portable path elsewhere). Within :func:`forced_impls` an op runs the implementation
given there whatever its modules and the environment ask: the ONNX exporter selects Swin's
``'export'`` forward this way.
"""
import contextlib
import os
import threading

AUTO = 'auto'
_forced = threading.local()


@contextlib.contextmanager
def forced_impls(**impls):
    """Within the context each op named here runs the given implementation, e.g.
    ``forced_impls(swin='export')``; contexts nest, the innermost wins."""
    previous = getattr(_forced, 'impls', {})
    _forced.impls = {**previous, **impls}
    try:
        yield
    finally:
        _forced.impls = previous


def forced_impl(op):
    """The implementation :func:`forced_impls` imposes on ``op`` here, or None."""
    return getattr(_forced, 'impls', {}).get(op)


def impl_env_var(op):
    """The environment variable that picks ``op``'s implementation, e.g. ``STM_MM_HALO_IMPL``."""
    return f'STM_MM_{op.upper()}_IMPL'


def requested_impl(op, impl, choices):
    """The implementation asked for: ``impl`` if not None, else ``$STM_MM_<OP>_IMPL``, else
    ``'auto'``. Raises ValueError naming the valid choices for anything else."""
    env = impl_env_var(op)
    choice = impl if impl is not None else os.environ.get(env, AUTO)
    valid = (AUTO, ) + tuple(choices)
    if choice not in valid:
        source = 'impl' if impl is not None else env
        raise ValueError(f'{op}: {source} must be one of {valid}, got {choice!r}')
    return choice


def resolve_triton_impl(op, impl, choices, device, portable):
    """The implementation of ``op`` a call on ``device`` runs, for ops with a Triton kernel.

    ``'auto'`` is ``'triton'`` on a CUDA device where Triton can run, else ``portable``; an
    explicit ``'triton'`` that cannot run on ``device`` raises RuntimeError saying why. An
    implementation forced by :func:`forced_impls` comes first.
    """
    from .triton import triton_unavailable_reason
    choice = forced_impl(op) or requested_impl(op, impl, choices)
    if choice not in (AUTO, 'triton'):
        return choice
    reason = triton_unavailable_reason(device)
    if choice == AUTO:
        return 'triton' if device.type == 'cuda' and reason is None else portable
    if reason is not None:
        raise RuntimeError(f"{op}: impl='triton' cannot run here: {reason}; fix: use "
                           f"impl='{portable}' (stm_cfg or ${impl_env_var(op)})")
    return choice
