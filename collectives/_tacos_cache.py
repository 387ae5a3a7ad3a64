"""A cache of synthesized schedules, so a sweep that asks the same collective pays once.

Entries are keyed by the topology's content (links with bandwidth and latency, not object
identity), the operation, the rank group, the size class (the power of two nearest the
size), chunks per NPU, trials and seed. A schedule is synthesized once at its class's
representative size and rescaled to every size of that class: the matching depends on the
size only through the ratio of latency to transfer time, which varies little within a class.

Entries live in memory per process; when the environment variable ``TRAINSIM_TACOS_CACHE``
names a folder, they are also stored there, so the worker processes of a sweep share them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from trainsim.topology import Topology

from ._ops import CollectiveOp
from ._schedule import Schedule
from ._tacos_schedule import synthesize_tacos
from ._tacos_store import load_schedule, save_schedule

__all__ = [
    "CACHE_DIR_ENV",
    "TACOS_DEFAULTS",
    "clear_tacos_cache",
    "tacos_cache_info",
    "tacos_schedule",
]

#: Settings the cost models use when they synthesize for ``algorithm="tacos"``.
TACOS_DEFAULTS: dict[str, int] = {"chunks_per_npu": 1, "trials": 3, "seed": 0}

_MAX_ENTRIES = 64
_lock = threading.Lock()
_entries: OrderedDict[tuple[object, ...], Schedule] = OrderedDict()
_fingerprints: weakref.WeakKeyDictionary[Topology, str] = weakref.WeakKeyDictionary()
_stats = {"hits": 0, "misses": 0, "disk_hits": 0}
#: Environment variable naming a folder shared by the processes of a sweep.
CACHE_DIR_ENV = "TRAINSIM_TACOS_CACHE"
#: Bumped whenever synthesis changes its schedules, so stored entries of older ones are unused
#: (2: reduce-scatter keeps each switch port in start order once reversed).
_SYNTHESIS_REVISION = 2


def tacos_schedule(
    op: CollectiveOp | str,
    ranks: Sequence[int],
    size_bytes: float,
    topology: Topology,
    *,
    chunks_per_npu: int | None = None,
    trials: int | None = None,
    seed: int | None = None,
) -> Schedule:
    """The TACOS schedule of ``op`` at ``size_bytes`` (sizes as in ``synthesize``), cached.

    >>> from trainsim.topology import ring
    >>> clear_tacos_cache()
    >>> a = tacos_schedule("all_gather", range(4), 1 << 20, ring(4))
    >>> b = tacos_schedule("all_gather", range(4), 5 << 18, ring(4))
    >>> tacos_cache_info()["misses"], float(b.transfer_bytes[0] / a.transfer_bytes[0])
    (1, 1.25)
    """
    operation = CollectiveOp.parse(op)
    cpn = TACOS_DEFAULTS["chunks_per_npu"] if chunks_per_npu is None else chunks_per_npu
    count = TACOS_DEFAULTS["trials"] if trials is None else trials
    rng_seed = TACOS_DEFAULTS["seed"] if seed is None else seed
    group = tuple(int(r) for r in ranks)
    size_class = round(math.log2(size_bytes)) if size_bytes >= 1 else 0
    key = (_fingerprint(topology), operation, group, size_class, cpn, count, rng_seed)
    with _lock:
        schedule = _entries.get(key)
        if schedule is not None:
            _entries.move_to_end(key)
            _stats["hits"] += 1
    if schedule is None:
        folder = os.environ.get(CACHE_DIR_ENV)
        path = Path(folder) / f"{_digest(key)}.npz" if folder else None
        schedule = load_schedule(path) if path is not None and path.is_file() else None
        with _lock:
            _stats["disk_hits" if schedule is not None else "misses"] += 1
        if schedule is None:
            schedule = synthesize_tacos(
                operation,
                float(2**size_class),
                topology,
                ranks=group,
                chunks_per_npu=cpn,
                trials=count,
                seed=rng_seed,
            ).schedule
            if path is not None:
                save_schedule(schedule, path)
        with _lock:
            _entries[key] = schedule
            while len(_entries) > _MAX_ENTRIES:
                _entries.popitem(last=False)
    return _rescaled(schedule, float(size_bytes))


def clear_tacos_cache() -> None:
    """Forget every cached schedule (and reset the hit counters)."""
    with _lock:
        _entries.clear()
        _stats["hits"] = _stats["misses"] = _stats["disk_hits"] = 0


def tacos_cache_info() -> dict[str, int]:
    """Hits, misses, hits on disk and entries in memory of the schedule cache."""
    with _lock:
        return {**_stats, "entries": len(_entries)}


def _fingerprint(topology: Topology) -> str:
    """A digest of the topology's NPU count and links (same network, same digest)."""
    known = _fingerprints.get(topology)
    if known is not None:
        return known
    rows = sorted(
        (int(u), int(v), float(d["bandwidth_gbps"]), float(d["latency_us"]))
        for u, v, d in topology.graph.edges(data=True)
    )
    digest = hashlib.sha256(np.asarray(rows, dtype=np.float64).tobytes())
    digest.update(str(topology.num_npus).encode())
    text = digest.hexdigest()
    _fingerprints[topology] = text
    return text


def _digest(key: tuple[object, ...]) -> str:
    text = "|".join(str(getattr(part, "value", part)) for part in key)
    text += f"|rev{_SYNTHESIS_REVISION}"
    return "tacos-" + hashlib.sha256(text.encode()).hexdigest()[:32]


def _rescaled(schedule: Schedule, size_bytes: float) -> Schedule:
    if schedule.size_bytes == size_bytes:
        return schedule
    factor = size_bytes / schedule.size_bytes if schedule.size_bytes else 0.0
    return dataclasses.replace(
        schedule,
        size_bytes=size_bytes,
        transfer_bytes=schedule.transfer_bytes * factor,
        compute_bytes=schedule.compute_bytes * factor,
    )
