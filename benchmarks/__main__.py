"""Run every ``benchmarks/bench_*.py`` module's ``main()``, or the ones named on the command line.

Usage: ``python -m benchmarks [NAME ...]`` where NAME is a module suffix (``et_io`` runs
``bench_et_io``).
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def _modules(selected: list[str]) -> list[str]:
    here = Path(__file__).parent
    names = sorted(
        info.name for info in pkgutil.iter_modules([str(here)]) if info.name.startswith("bench_")
    )
    if selected:
        names = [n for n in names if n.removeprefix("bench_") in selected or n in selected]
    return names


def main() -> int:
    """Run the selected benchmarks in turn and return 0."""
    for name in _modules(sys.argv[1:]):
        print(f"== {name}", flush=True)
        importlib.import_module(f"benchmarks.{name}").main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
