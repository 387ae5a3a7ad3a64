"""The progress bar of a sweep: plans done out of the total, and the best plan so far."""

from __future__ import annotations

from typing import Any

from trainsim.studies._progress import LoopProgress

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


class SweepProgress(LoopProgress):
    """A rich progress bar of a sweep on stderr, with the best plan so far.

    ``enabled`` None shows it only when stderr is a terminal (quiet in pipes, logs and CI);
    True or False force it on or off.
    """

    def __init__(self, total: int, *, objective: str, enabled: bool | None = None) -> None:
        super().__init__("sweep", total, enabled=enabled)
        self.objective = objective

    def advance_best(self, best: dict[str, Any] | None) -> None:
        """Count one plan done; show ``best`` (a record) as the best so far."""
        label = ""
        if best is not None and best.get("objective") is not None:
            label = f"best {self.objective}={best['objective']:.4g}: {describe_plan(best)}"
        self.advance(label)
