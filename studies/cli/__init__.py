"""The ``trainsim`` command line: one subcommand module per topic, one error policy."""

from trainsim.studies.cli._main import main

__all__ = ["main"]
