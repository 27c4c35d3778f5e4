"""The errors stm_mm raises for problems a user can fix, and which errors a CLI reports as known.

Every class derives from :class:`StmMmError`; each message is one line that says what is wrong
and ends with ``fix: ...``. The builtin second base (``ValueError``, ``RuntimeError``) keeps
``except ValueError`` callers working. ``exit_code`` is what a CLI exits with
(:mod:`stm_mm.engine.cli`): 2 for bad input, 3 for a run that stopped.
"""

DEBUG_HINT = '(run with --debug for the full traceback)'


class StmMmError(Exception):
    """A problem the user can fix; the message says what and how."""

    exit_code = 2


class ReliabilityError(StmMmError, RuntimeError):
    """A run refused by :class:`~stm_mm.engine.runner.ReliableRunner` (bad option or input)."""


class CheckpointError(ReliabilityError):
    """A checkpoint a run cannot use. ``kind`` says what is wrong, for summaries
    (``'missing'``, ``'refused as unsafe'``, ``'not a checkpoint'``, ``'truncated or corrupt'``,
    ``'disk full'``, ...)."""

    def __init__(self, message, kind='unreadable'):
        super().__init__(message)
        self.kind = kind


class InputSizeError(ReliabilityError):
    """The model cannot take the images a pipeline produces."""


class CheckpointReadError(StmMmError, ValueError):
    """A checkpoint file that cannot be read (:mod:`stm_mm.checkpoint_io`)."""


class UnsafeCheckpointError(CheckpointReadError):
    """The file holds Python objects outside the allow-list (it was not loaded)."""


class CorruptCheckpointError(CheckpointReadError):
    """The file is a checkpoint format but truncated or damaged."""


class NotACheckpointError(CheckpointReadError):
    """The file is not a PyTorch or safetensors file at all."""


class DataValidationError(StmMmError, ValueError):
    """A dataset that cannot be used as configured; the message says where and how to fix it."""


class UnreadableImageError(DataValidationError):
    """An image file that cannot be decoded. ``path`` and ``reason`` are set when known."""

    def __init__(self, message, path=None, reason=None):
        super().__init__(message)
        self.path, self.reason = path, reason

    @classmethod
    def of(cls, path, reason):
        return cls(f'image {path} cannot be decoded: {reason}; fix: replace or delete the file, '
                   'or pass --skip-invalid to skip unreadable images (listed in '
                   'work_dir/skipped_images.txt)', path, reason)


class TooManyUnreadableError(DataValidationError):
    """More images of a split are unreadable than ``reliability.max_unreadable`` allows."""


class LaunchError(StmMmError, RuntimeError):
    """The process environment does not describe a consistent distributed job."""


class NonFiniteLossError(StmMmError, RuntimeError):
    """Training stopped on a NaN/Inf loss or weights; the message names the iteration."""

    exit_code = 3


# errors whose message is the whole report (no exception type in front of it) and that are
# root causes, not consequences of another rank's failure (a broken collective)
KNOWN_ERRORS = (StmMmError, ValueError, KeyError, FileNotFoundError)


def is_known(exc):
    """Whether ``exc`` is one of :data:`KNOWN_ERRORS`."""
    return isinstance(exc, KNOWN_ERRORS)
