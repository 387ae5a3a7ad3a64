"""The results file of a sweep: one record appended per plan as it arrives, read back to resume.

``.csv`` files get a header and one row per plan; any other suffix gets JSON lines. Every
write is flushed at once, so a sweep killed at any moment loses at most the line being
written: opening the file drops a partial last line, and the plans recorded are skipped.
Records carry the sweep's fingerprint, so a file never mixes two different sweeps.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from trainsim.models import ParallelPlan
from trainsim.studies._sweep_space import SweepConfigError

__all__ = ["RECORD_COLUMNS", "ResultStore"]

#: Columns of every record, in file order.
RECORD_COLUMNS: tuple[str, ...] = (
    "sweep_id",
    "key",
    "cluster",
    *ParallelPlan.model_fields,
    "status",
    "tier",
    "step_time_s",
    "tokens_per_s",
    "mfu",
    "memory_gib",
    "time_to_train_days",
    "objective",
    "fast_step_time_s",
    "error",
)
_FLOAT_COLUMNS = (
    "step_time_s",
    "tokens_per_s",
    "mfu",
    "memory_gib",
    "time_to_train_days",
    "objective",
    "fast_step_time_s",
)


def _drop_partial_tail(path: Path) -> None:
    """Truncate a file after its last newline: a write cut short by a kill is not a record."""
    with open(path, "rb+") as handle:
        data = handle.read()
        if data and not data.endswith(b"\n"):
            handle.truncate(data.rfind(b"\n") + 1)


def _from_csv_row(row: dict[str, str]) -> dict[str, Any]:
    """Types of a CSV row restored: plan fields through ``ParallelPlan``, numbers as floats."""
    plan_fields = {
        name: (row[name] if row[name] != "" else None) for name in ParallelPlan.model_fields
    }
    plan = ParallelPlan.model_validate(
        {k: v for k, v in plan_fields.items() if v is not None}
    ).model_dump(mode="json")
    record: dict[str, Any] = {k: (v if v != "" else None) for k, v in row.items()}
    record.update(plan)
    for column in _FLOAT_COLUMNS:
        value = record.get(column)
        record[column] = None if value is None else float(value)
    return record


class ResultStore:
    """Append-only records of one sweep in ``path`` (created if missing)."""

    def __init__(self, path: str | Path, sweep_id: str) -> None:
        self.path = Path(path)
        self.sweep_id = sweep_id
        self._csv = self.path.suffix.lower() == ".csv"
        self._handle: IO[str] | None = None
        self._writer: Any = None

    def load(self) -> list[dict[str, Any]]:
        """Records already in the file (none if it does not exist), one per plan."""
        if not self.path.exists():
            return []
        _drop_partial_tail(self.path)
        text = self.path.read_text()
        if self._csv:
            rows = [_from_csv_row(r) for r in csv.DictReader(io.StringIO(text))]
        else:
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        records: dict[str, dict[str, Any]] = {}
        for row in rows:
            if row.get("sweep_id") != self.sweep_id:
                raise SweepConfigError(
                    f"{self.path} holds results of another sweep (model, device, GPU count, "
                    "tokens or costing differ): give another results file"
                )
            records[row["key"]] = row
        return list(records.values())

    def __enter__(self) -> ResultStore:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists() or self.path.stat().st_size == 0
        self._handle = open(self.path, "a", newline="" if self._csv else None)
        if self._csv:
            self._writer = csv.DictWriter(self._handle, fieldnames=RECORD_COLUMNS)
            if new:
                self._writer.writeheader()
        return self

    def append(self, record: dict[str, Any]) -> None:
        """Write one record and flush it to the operating system."""
        if self._handle is None:
            raise RuntimeError("ResultStore.append outside its 'with' block")
        if self._csv:
            self._writer.writerow({k: record.get(k) for k in RECORD_COLUMNS})
        else:
            self._handle.write(json.dumps(record) + "\n")
        # Flushed, not fsynced: a killed process loses nothing the OS already holds; a
        # per-record fsync would cost more than small plans take to simulate.
        self._handle.flush()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
