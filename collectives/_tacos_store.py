"""Schedules on disk (``.npz``), so the processes of one sweep share one synthesis."""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from ._ops import CollectiveOp
from ._schedule import Phase, Schedule

__all__ = ["load_schedule", "save_schedule"]

_ARRAYS = (
    "src",
    "dst",
    "step",
    "phase",
    "phase_step",
    "transfer_bytes",
    "compute_bytes",
    "reduce",
    "deps",
    "chunk_ptr",
    "chunk_lo",
    "chunk_hi",
    "chunk_src",
    "chunk_dst",
)


def save_schedule(schedule: Schedule, path: Path) -> None:
    """Write ``schedule`` to ``path`` atomically (readers never see half a file)."""
    meta = {
        "op": schedule.op.value,
        "algorithm": schedule.algorithm,
        "ranks": list(schedule.ranks),
        "size_bytes": schedule.size_bytes,
        "num_chunks": schedule.num_chunks,
        "phases": [[p.op.value, p.algorithm, p.dim, p.group_size] for p in schedule.phases],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(
                handle,
                meta=np.asarray(json.dumps(meta)),
                **{name: getattr(schedule, name) for name in _ARRAYS},
            )
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_schedule(path: Path) -> Schedule | None:
    """The schedule stored at ``path``, or ``None`` when it is missing or unreadable."""
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            arrays = {name: data[name] for name in _ARRAYS}
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    return Schedule(
        op=CollectiveOp(meta["op"]),
        algorithm=str(meta["algorithm"]),
        ranks=tuple(int(r) for r in meta["ranks"]),
        size_bytes=float(meta["size_bytes"]),
        phases=tuple(
            Phase(CollectiveOp(op), str(name), int(dim), int(size))
            for op, name, dim, size in meta["phases"]
        ),
        num_chunks=int(meta["num_chunks"]),
        **arrays,
    )
