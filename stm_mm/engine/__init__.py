from .launcher import (apply_cli_options, finish_distributed, init_distributed, build_runner)

__all__ = ['apply_cli_options', 'init_distributed', 'finish_distributed', 'build_runner']
