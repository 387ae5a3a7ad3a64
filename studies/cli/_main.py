"""Entry point of the ``trainsim`` command: parser assembly, ``--config`` files and errors.

Every subcommand lives in its own module that exposes ``register(subparsers)``; the module adds
one parser whose ``func`` default takes the parsed namespace and returns an exit status. Errors
follow one policy: a user error (any ``ValueError`` or ``OSError``, which every package's error
base class derives from) prints one line on stderr and exits 2; so does anything unexpected,
with its type named, unless ``TRAINSIM_DEBUG=1`` asks for the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["COMMAND_MODULES", "build_parser", "main"]

#: Subcommand modules, in the order ``trainsim --help`` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "trainsim.studies.cli._demo",
    "trainsim.studies.cli._et",
    "trainsim.studies.cli._simulate",
    "trainsim.studies.cli._predict",
    "trainsim.studies.cli._forecast",
    "trainsim.studies.cli._sweep",
    "trainsim.studies.cli._whatif",
    "trainsim.studies.cli._validate",
    "trainsim.studies.cli._convert",
    "trainsim.studies.cli._generate",
    "trainsim.studies.cli._memory",
    "trainsim.studies.cli._measure",
    "trainsim.studies.cli._collective",
    "trainsim.studies.cli._synthesize",
    "trainsim.studies.cli._presets",
)

EXIT_USAGE = 2

Handler = Callable[[argparse.Namespace], int]


class CLIError(ValueError):
    """A command-line problem that is the user's to fix (bad flag value, bad config file)."""


class _Parser(argparse.ArgumentParser):
    """Argument parser whose usage errors are one line and exit status 2."""

    def error(self, message: str) -> Any:
        raise CLIError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    """Assemble the full ``trainsim`` parser from every registered subcommand module."""
    parser = _Parser(
        prog="trainsim",
        description="Predict distributed-training step time and time-to-train distributions "
        "from Chakra execution traces.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module_name in COMMAND_MODULES:
        module = importlib.import_module(module_name)
        module.register(sub)
    for sub_parser in sub.choices.values():
        _add_common_flags(sub_parser)
    return parser


def _add_common_flags(parser: argparse.ArgumentParser) -> None:
    """Give a leaf command ``--config``; recurse through nested subcommands."""
    nested = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if nested:
        for child in nested[0].choices.values():
            _add_common_flags(child)
        return
    if not any("--config" in a.option_strings for a in parser._actions):
        parser.add_argument(
            "--config",
            metavar="FILE.yaml",
            help="YAML or JSON file whose keys are this command's flags (flags given win)",
        )


def _leaf_parser(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.ArgumentParser:
    """Find the parser of the (possibly nested) subcommand named in ``argv``."""
    current = parser
    for token in argv:
        subs = [a for a in current._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            break
        if token in subs[0].choices:
            current = subs[0].choices[token]
    return current


def _config_defaults(parser: argparse.ArgumentParser, config_path: str) -> dict[str, Any]:
    """Read a ``--config`` file and map its keys onto the command's flag destinations."""
    import yaml

    path = Path(config_path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise CLIError(f"cannot read config file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise CLIError(
            f"config file {path} is not valid YAML/JSON: {exc}".splitlines()[0]
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise CLIError(f"config file {path} must hold a mapping of flag names to values")
    # A key may be any of the flag's spellings (``sequence_parallel`` as well as ``sp``).
    actions: dict[str, argparse.Action] = {}
    for action in parser._actions:
        if action.dest in ("help", "config"):
            continue
        actions[action.dest] = action
        for option in action.option_strings:
            actions[option.lstrip("-").replace("-", "_")] = action
    defaults: dict[str, Any] = {}
    for key, value in data.items():
        name = str(key).lstrip("-").replace("-", "_")
        if name not in actions:
            allowed = ", ".join(sorted(actions))
            raise CLIError(f"config file {path}: unknown key {key!r} (allowed: {allowed})")
        action = actions[name]
        defaults[action.dest] = _config_value(path, key, action, value)
    return defaults


def _config_value(path: Path, key: object, action: argparse.Action, value: Any) -> Any:
    """Check a config value as its flag would be checked (argparse skips defaults' types)."""
    if (
        action.type is not None
        and isinstance(value, (str, int, float))
        and not isinstance(value, bool)
    ):
        convert: Callable[[str], Any] = action.type  # type: ignore[assignment]
        try:
            value = convert(str(value))
        except (argparse.ArgumentTypeError, TypeError, ValueError) as exc:
            raise CLIError(f"config file {path}: {key}: {exc}") from None
    if action.choices is not None and value not in action.choices:
        allowed = ", ".join(str(c) for c in action.choices)
        raise CLIError(f"config file {path}: {key}: {value!r} is not one of {allowed}")
    return value


def _run(argv: Sequence[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "command", None) is None:
        parser.print_help()
        return EXIT_USAGE
    config = getattr(args, "config", None)
    if config:
        leaf = _leaf_parser(parser, argv)
        leaf.set_defaults(**_config_defaults(leaf, config))
        args = parser.parse_args(argv)
    func: Handler | None = getattr(args, "func", None)
    if func is None:
        _leaf_parser(parser, argv).print_help()
        return EXIT_USAGE
    return func(args)


def _first_line(exc: BaseException) -> str:
    """The one line an error is reported with; pydantic's first line only counts errors."""
    from pydantic import ValidationError

    if isinstance(exc, ValidationError) and exc.errors():
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        text = str(err["msg"]).removeprefix("Value error, ")
        return f"{exc.title}: {where + ': ' if where else ''}{text}"
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout already closed or not a real file
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``trainsim`` command line and return its exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        status = _run(arguments)
        sys.stdout.flush()  # a closed pipe shows here, not at exit after this handler
        return status
    except BrokenPipeError:
        # The reader stopped (``trainsim ... | head``): not an error of the run.
        _silence_stdout()
        return 0
    except SystemExit as exc:  # --help and --version exit through argparse
        return exc.code if isinstance(exc.code, int) else 0
    except KeyboardInterrupt:
        print("trainsim: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError) as exc:
        message = _first_line(exc)
        print(f"trainsim: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:
        if os.environ.get("TRAINSIM_DEBUG") == "1":
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"trainsim: internal error: {type(exc).__name__}: {first}", file=sys.stderr)
        return EXIT_USAGE
