"""A progress bar for long loops of the studies, shown only where someone is watching."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any, TypeVar

__all__ = ["LoopProgress", "progress_enabled"]

T = TypeVar("T")
P = TypeVar("P", bound="LoopProgress")


def progress_enabled(enabled: bool | None) -> bool:
    """``enabled``, or when None whether stderr is a terminal (quiet in pipes, logs and CI)."""
    return sys.stderr.isatty() if enabled is None else enabled


class LoopProgress:
    """A rich progress bar on stderr: items done of the total, elapsed and remaining time.

    ``enabled`` None shows it only on a terminal; True or False force it. Disabled, it costs
    nothing and prints nothing.
    """

    def __init__(self, label: str, total: int, *, enabled: bool | None = None) -> None:
        self.label = label
        self.total = total
        self.enabled = progress_enabled(enabled)
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self: P) -> P:
        if self.enabled and self.total:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn(self.label),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[note]}"),
                console=Console(stderr=True),
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task(self.label, total=self.total, note="")
        return self

    def advance(self, note: str = "") -> None:
        """Count one item done; ``note`` says what it was (or the best so far)."""
        if self._progress is not None:
            self._progress.update(self._task, advance=1, note=note)

    def track(self, items: Iterable[T], describe: Callable[[T], str] | None = None) -> Iterator[T]:
        """Yield ``items``, counting each one done when the loop asks for the next."""
        for item in items:
            yield item
            self.advance(describe(item) if describe is not None else "")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
