# mmdet's default runtime (hooks, logger, visualiser), seed 0 as in the authors' runs.
# Metrics: every evaluation is appended as one JSON line to
# <work_dir>/<timestamp>/vis_data/scalars.json (training) and tools/test.py writes
# <work_dir>/<timestamp>/<timestamp>.json (MMEngine's LoggerHook).
_base_ = ['mmdet::_base_/default_runtime.py']

randomness = dict(seed=0)
