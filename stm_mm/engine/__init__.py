from .compile_hook import CompileBackboneHook
from .ema_hook import DualEvalEMAHook
from .hooks import FiniteLossHook, ReliableCheckpointHook
from .launcher import (apply_cli_options, build_runner, check_launch_env, exit_code_of,
                       finish_distributed, format_error, init_distributed, run_job)
from .runner import ReliableRunner, reliability_options

__all__ = ['apply_cli_options', 'run_job', 'init_distributed', 'finish_distributed',
           'build_runner', 'check_launch_env', 'format_error', 'exit_code_of', 'ReliableRunner',
           'FiniteLossHook', 'ReliableCheckpointHook', 'CompileBackboneHook',
           'reliability_options', 'DualEvalEMAHook']
