"""The progress bar of a sweep: plans done out of the total, and the best plan so far."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any

__all__ = ["SweepProgress", "describe_plan"]


def describe_plan(record: dict[str, Any]) -> str:
    """A compact label of a record's plan (``tp8 pp16 dp128 mb1 full``)."""
    parts = [f"tp{record['tp']}", f"pp{record['pp']}", f"dp{record['dp']}"]
    for name in ("cp", "ep", "vpp"):
        if record.get(name, 1) != 1:
            parts.append(f"{name}{record[name]}")
    parts.append(f"mb{record['micro_batch_size']}")
    if record.get("zero_stage"):
        parts.append(f"zero{record['zero_stage']}")
    if record.get("recompute", "none") != "none":
        parts.append(str(record["recompute"]))
    if record.get("cluster"):
        parts.append(str(record["cluster"]))
    return " ".join(parts)


class SweepProgress:
    """A rich progress bar of a sweep on stderr.

    ``enabled`` None shows it only when stderr is a terminal (quiet in pipes, logs and CI);
    True or False force it on or off.
    """

    def __init__(self, total: int, *, objective: str, enabled: bool | None = None) -> None:
        self.total = total
        self.objective = objective
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> SweepProgress:
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
                TextColumn("sweep"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[best]}"),
                console=Console(stderr=True),
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task("sweep", total=self.total, best="")
        return self

    def advance(self, best: dict[str, Any] | None) -> None:
        """Count one plan done; show ``best`` (a record) as the best so far."""
        if self._progress is None:
            return
        label = ""
        if best is not None and best.get("objective") is not None:
            label = f"best {self.objective}={best['objective']:.4g}: {describe_plan(best)}"
        self._progress.update(self._task, advance=1, best=label)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
