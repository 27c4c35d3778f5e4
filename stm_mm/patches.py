"""The changes stm_mm makes to MMEngine's behaviour, and every private MMEngine name it uses.

``import stm_mm`` changes nothing global: it registers classes (models, token mixers,
transforms, datasets, hooks, the ``'stm_mm_atomic'`` file backend) and, lazily, the model zoo.

:func:`install` is the one opt-in change: MMEngine's ``CheckpointLoader`` then reads local
files and http(s) URLs through :func:`stm_mm.checkpoint_io.load_checkpoint` (weights only:
a checkpoint never runs code; ``--unsafe-load`` / ``STM_MM_UNSAFE_LOAD=1`` to trust one) and
converts the authors' released layouts (:func:`stm_mm.zoo.to_stm_mm_layout`). Concretely:

* the ``''`` (local) and ``http://``/``https://`` schemes of ``CheckpointLoader`` are replaced
  (``register_scheme(force=True)``), each wrapped in the layout conversion;
* ``mmengine.runner.checkpoint.load_from_local`` / ``load_from_http``, which the other schemes
  (``torchvision://``, ``open-mmlab://``, ``mmcls://``) call directly, become the safe readers
  (module attributes: MMEngine has no public way to change them).

It is idempotent and sets the order itself. It runs in: ``stm_mm.engine.cli.run_cli`` (every
tool), ``ReliableRunner`` construction (``tools/train.py``, ``tools/test.py``,
``stm_mm.engine.build_runner``), and the lookup of a token mixer (``TOKEN_MIXERS.get``, see
:mod:`stm_mm.registry`), so a config-driven mmpretrain/mmdet Runner, ``init_model``,
``init_detector`` or ``get_model`` that builds a ``UnifiedBackbone`` reads checkpoints safely
before it reads any. Library code reading checkpoints with MMEngine without building a
``UnifiedBackbone`` calls ``stm_mm.patches.install()`` itself.

Private MMEngine names still used (each behind one function here, checked by
``tests/test_engine/test_patches.py`` so that an MMEngine upgrade fails with one message):

* ``Runner._<split>_dataloader`` / ``_<split>_evaluator``: the configs before the Runner builds
  them; the pre-flight checks edit them (no public accessor returns the unbuilt config);
* ``Runner._val_loop``: whether the run validates, without building the loop;
* ``Runner._resume`` / ``_load_from`` / ``_has_loaded``: the state ``load_or_resume`` works on
  (``ReliableRunner`` replaces MMEngine's latest-checkpoint search by one that skips broken
  files);
* ``Runner._randomness_cfg``: ``diff_rank_seed``, whose per-rank RNG states are not restored;
* ``EMAHook._swap_ema_parameters()``: ``DualEvalEMAHook`` evaluates both sets of weights;
* ``HistoryBuffer._statistics_methods``: the method names the checkpoint allow-list resolves.
"""
import os
import os.path as osp

# name -> (owner, why); what tests/test_engine/test_patches.py checks
PRIVATE_NAMES = {
    'Runner._train_dataloader': 'pre-flight checks edit the unbuilt dataloader config',
    'Runner._val_dataloader': 'pre-flight checks edit the unbuilt dataloader config',
    'Runner._test_dataloader': 'pre-flight checks edit the unbuilt dataloader config',
    'Runner._val_evaluator': 'skip_invalid points it at the cleaned annotation file',
    'Runner._test_evaluator': 'skip_invalid points it at the cleaned annotation file',
    'Runner._val_loop': 'whether the run validates, without building the loop',
    'Runner._resume': 'load_or_resume: --resume given',
    'Runner._load_from': 'load_or_resume: the checkpoint named',
    'Runner._has_loaded': 'load_or_resume: loading happens once',
    'Runner._randomness_cfg': 'diff_rank_seed: RNG states are per rank',
    'EMAHook._swap_ema_parameters': 'DualEvalEMAHook evaluates the EMA weights too',
    'HistoryBuffer._statistics_methods': 'the checkpoint allow-list resolves these methods',
}


# ----------------------------------------------------------------------------- install()
def _load_from_local(filename, map_location=None):
    from .checkpoint_io import load_checkpoint
    return load_checkpoint(filename, map_location=map_location)


def _load_from_http(filename, map_location=None, model_dir=None, progress=False):
    """MMEngine's http(s) scheme, reading the downloaded file with :func:`load_checkpoint`
    (``torch.hub.load_state_dict_from_url`` unpickles fully). Rank 0 downloads first."""
    from mmengine.dist import barrier, get_dist_info
    from torch.hub import download_url_to_file, get_dir

    from .checkpoint_io import load_checkpoint
    model_dir = model_dir or osp.join(get_dir(), 'checkpoints')
    cached = osp.join(model_dir, osp.basename(filename.split('?')[0]))
    rank, world_size = get_dist_info()
    if rank == 0 and not osp.isfile(cached):
        os.makedirs(model_dir, exist_ok=True)
        download_url_to_file(filename, cached, progress=progress)
    if world_size > 1:
        barrier()  # the other ranks read rank 0's download
    return load_checkpoint(cached, map_location=map_location)


def _converting(loader):
    """``loader`` (a ``CheckpointLoader`` scheme) followed by the authors' layout conversion."""

    def load(filename, map_location=None, *args, **kwargs):
        from .zoo import to_stm_mm_layout
        return to_stm_mm_layout(loader(filename, map_location, *args, **kwargs))

    load.__name__ = loader.__name__  # MMEngine logs "Loads checkpoint by <name> backend"
    return load


_LOCAL, _HTTP = _converting(_load_from_local), _converting(_load_from_http)


def install():
    """Make MMEngine read checkpoints safely and accept the authors' files (module docstring).

    Idempotent; run it again after anything that registers other loaders for these schemes.
    """
    import mmengine.runner.checkpoint as mm_checkpoint
    from mmengine.runner import CheckpointLoader
    CheckpointLoader.register_scheme('', _LOCAL, force=True)
    CheckpointLoader.register_scheme(('http://', 'https://'), _HTTP, force=True)
    mm_checkpoint.load_from_local = _load_from_local
    mm_checkpoint.load_from_http = _load_from_http


# ----------------------------------------------------------------------------- private names
def pending_cfg(runner, split, part='dataloader'):
    """The ``split`` (``'train'``, ``'val'``, ``'test'``) ``part`` (``'dataloader'``,
    ``'evaluator'``) config a Runner holds until it builds it (then the built object)."""
    return getattr(runner, f'_{split}_{part}')


def has_val_loop(runner):
    """Whether the Runner validates (``val_cfg`` given), without building the loop."""
    return runner._val_loop is not None


def load_request(runner):
    """``(resume, load_from, has_loaded)`` of a Runner: what ``load_or_resume`` acts on."""
    return runner._resume, runner._load_from, runner._has_loaded


def mark_loaded(runner):
    """Tell the Runner its checkpoint is loaded (``load_or_resume`` then does nothing)."""
    runner._has_loaded = True


def randomness_cfg(runner):
    """The Runner's ``randomness`` config (``seed``, ``diff_rank_seed``, ...)."""
    return runner._randomness_cfg


def swap_ema_parameters(hook):
    """Exchange the model's and the EMA copy's parameters (MMEngine's ``EMAHook``)."""
    hook._swap_ema_parameters()


def history_buffer_statistics():
    """The names of ``HistoryBuffer``'s statistics methods (kept in its pickled instances)."""
    from mmengine.logging import HistoryBuffer
    return frozenset(HistoryBuffer._statistics_methods) | {'min', 'max', 'current', 'mean'}
