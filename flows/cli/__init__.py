"""The ``flows`` command line.

Every module in this package adds its commands to :data:`app` on import (``broker``,
``topics``, ``topology``, ...), so a new command family is one new module.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil

import typer

app = typer.Typer(
    name="flows",
    help="Stream processing in the spirit of Kafka Streams, with a Kafka-compatible broker.",
    no_args_is_help=True,
    add_completion=False,
)


def _load_commands() -> None:
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


def main() -> None:
    """Console-script entry point."""
    # aiokafka logs each failed connection attempt; commands report one line instead.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    _load_commands()
    app()
