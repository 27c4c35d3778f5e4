from ..test_det.conftest import _restore_default_scope  # noqa: F401  (autouse fixture)
