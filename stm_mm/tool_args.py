"""The command-line vocabulary every tool in ``tools/`` shares.

``--input-size H [W]`` (one int: square), ``--batch-size``, ``--device`` (default ``cuda`` when
available, else ``cpu``), ``--json``/``--out`` for output files and ``--debug``; a bad argument
is one line ``error: ...; fix: ...`` and exit code 2, like the errors
:func:`stm_mm.engine.cli.run_cli` reports while the tool runs.
"""
import argparse

import torch


class ToolArgumentParser(argparse.ArgumentParser):
    """``ArgumentParser`` whose errors are one line (no usage block) and which has ``--debug``.

    An option added again (``--debug`` by :func:`stm_mm.checkpoint_io.add_checkpoint_tool_options`)
    replaces the first one.
    """

    def __init__(self, description=None, **kwargs):
        super().__init__(description=description, conflict_handler='resolve',
                         formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs)
        self.add_argument('--debug', action='store_true', help='show the traceback of an error')

    def error(self, message):
        fix = '' if '; fix: ' in message else f'; fix: see {self.prog} --help'
        self.exit(2, f'error: {message}{fix}\n')


def one_line_errors(parser):
    """Give a parser built elsewhere (torchrun's) the one-line errors of :class:`ToolArgumentParser`."""
    parser.error = ToolArgumentParser.error.__get__(parser)
    return parser


def default_device():
    """``'cuda'`` when a GPU is available, else ``'cpu'``."""
    return 'cuda' if torch.cuda.is_available() else 'cpu'


class _InputSize(argparse.Action):
    """Stores ``(H, W)``; one value means a square."""

    def __call__(self, parser, namespace, values, option_string=None):
        if len(values) > 2:
            parser.error(f'{option_string} takes H or H W, got {len(values)} values')
        if min(values) <= 0:
            parser.error(f'{option_string} must be positive, got {values}')
        setattr(namespace, self.dest, (values[0], values[-1]))


def add_input_size(parser, default=224, help='input height and width (one value: square)'):
    """``--input-size H [W]`` -> ``args.input_size == (H, W)`` (``default=None``: None)."""
    parser.add_argument('--input-size', type=int, nargs='+', action=_InputSize,
                        default=None if default is None else (default, default),
                        metavar=('H', 'W'),
                        help=help if default is None else f'{help} (default {default})')


def add_batch_size(parser, default, help='images per batch'):
    parser.add_argument('--batch-size', type=int, default=default,
                        help=f'{help} (default {default})')


def add_device(parser):
    parser.add_argument('--device', default=default_device(),
                        help='cpu, cuda, cuda:1, ... (default: cuda when available, else cpu)')


def add_json(parser, help='write the records to this JSON file'):
    parser.add_argument('--json', metavar='PATH', help=help)
