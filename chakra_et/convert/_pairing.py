"""Which host trace and which Kineto trace belong together, read from their content.

A Kineto trace says its rank in ``distributedInfo.rank`` and its process in every CPU event's
``pid``; a host execution trace says its ``pid`` and the wall-clock ``time`` it was recorded.
File names are only a fallback: PyTorch and param write ``workerR_step_N.<ts>.pt.trace.json``,
``rank_R.*.pt.trace.json`` or ``dlrm_eg_R.json``, and people rename them.

Two traces are from different runs when their pids differ, when they were recorded more
than ``MAX_DAYS_APART`` apart, or when too few host ops find their Kineto span.
"""

from __future__ import annotations

import gzip
import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from trainsim.chakra_et.convert._errors import TraceConversionError
from trainsim.chakra_et.convert._host_et import HostTrace
from trainsim.chakra_et.convert._kineto import KinetoTrace, load_kineto_trace
from trainsim.chakra_et.convert._link import HostKinetoLink

__all__ = [
    "MAX_DAYS_APART",
    "MIN_MATCH_RATIO",
    "find_rank_files",
    "rank_from_name",
    "run_mismatch",
]

#: Below this share of host ops found in Kineto, the two files are from different runs.
MIN_MATCH_RATIO = 0.5
#: The host trace's ``time`` is local wall-clock time of unknown zone; a day covers any zone.
MAX_DAYS_APART = 1.0
_HEAD_BYTES = 1 << 18
#: Kineto timestamps at or above this are µs since the Unix epoch (after 2001).
_EPOCH_US = 1e15

_RANK_PATTERNS = (
    re.compile(r"rank[_-]?(\d+)", re.IGNORECASE),
    re.compile(r"^worker[_-]?(\d+)[._-]", re.IGNORECASE),  # torch.profiler's worker{R}_...
    re.compile(r"^[A-Za-z_]+[._-](\d+)\.(?:pt\.trace\.)?json(?:\.gz)?$"),
)
_DIST_RANK = re.compile(r'"distributedInfo"\s*:\s*\{[^{}]*?"rank"\s*:\s*(\d+)')
_HOST_PID = re.compile(r'"pid"\s*:\s*(\d+)')


def rank_from_name(name: str) -> int | None:
    """The rank a trace's file name spells, if any (see the module docstring)."""
    for pattern in _RANK_PATTERNS:
        match = pattern.search(name)
        if match:
            return int(match.group(1))
    return None


def _kineto_epoch_s(kineto: KinetoTrace) -> float | None:
    window = kineto.cpu_window_us
    if window is None:
        return None
    start_us = window[0]
    if kineto.base_time_ns is not None and start_us < _EPOCH_US:
        start_us += kineto.base_time_ns / 1000.0
    return start_us / 1e6 if start_us >= _EPOCH_US else None


def _host_epoch_s(host: HostTrace) -> float | None:
    if host.recorded_at is None:
        return None
    try:
        when = datetime.strptime(host.recorded_at, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
    return when.replace(tzinfo=timezone.utc).timestamp()


def run_mismatch(host: HostTrace, kineto: KinetoTrace, link: HostKinetoLink) -> list[str]:
    """Why ``host`` and ``kineto`` are from different runs (empty when nothing says so)."""
    reasons: list[str] = []
    if host.pid is not None and kineto.pid is not None and host.pid != kineto.pid:
        reasons.append(f"host pid {host.pid}, Kineto pid {kineto.pid}")
    host_s, kineto_s = _host_epoch_s(host), _kineto_epoch_s(kineto)
    if host_s is not None and kineto_s is not None:
        days = abs(host_s - kineto_s) / 86400.0
        if days > MAX_DAYS_APART:
            kineto_day = datetime.fromtimestamp(kineto_s, timezone.utc).strftime("%Y-%m-%d")
            reasons.append(
                f"host recorded {host.recorded_at}, Kineto {kineto_day} ({days:.0f} days apart)"
            )
    ratio = link.match_ratio
    if not reasons and ratio >= MIN_MATCH_RATIO:
        return []
    reasons.append(f"{ratio:.1%} of host ops match a Kineto span ({link.method})")
    return reasons


def _head(path: Path) -> str:
    """The first bytes of a (possibly gzipped) file as text; empty when it cannot be read."""
    try:
        with open(path, "rb") as raw:
            magic = raw.read(2)
        if magic == b"\x1f\x8b":
            with gzip.open(path, "rb") as stream:
                data = stream.read(_HEAD_BYTES)
        else:
            with open(path, "rb") as stream:
                data = stream.read(_HEAD_BYTES)
    except (OSError, EOFError):
        return ""
    return data.decode("utf-8", "replace")


def _kind(head: str) -> str:
    """``"host"``, ``"kineto"`` or ``""`` from a file's first bytes."""
    if '"schemaVersion"' in head or '"traceEvents"' in head or '"deviceProperties"' in head:
        return "kineto"
    if '"nodes"' in head or '"schema"' in head:
        return "host"
    return ""


@dataclass
class _Found:
    path: Path
    head: str
    name_rank: int | None
    rank: int | None = None
    pid: int | None = None


def _kineto_rank(found: _Found) -> int:
    match = _DIST_RANK.search(found.head)
    if match:
        return int(match.group(1))
    # Not in the first bytes (a long deviceProperties block): read the whole trace.
    value = load_kineto_trace(found.path).distributed_info.get("rank")
    rank = value if isinstance(value, int) and not isinstance(value, bool) else None
    if rank is None:
        rank = found.name_rank
    if rank is None:
        raise TraceConversionError(
            f"{found.path}: Kineto trace names no rank (no distributedInfo.rank, "
            "none in its file name)"
        )
    return rank


def find_rank_files(
    directory: str | os.PathLike[str],
) -> dict[int, tuple[Path | None, Path | None]]:
    """Pair each rank's host trace with its Kineto trace in a directory, by content.

    A Kineto trace's rank is its ``distributedInfo.rank`` (else its file name); its host
    trace is the one whose ``pid`` its events carry (else the one named with its rank; with
    neither, the rank converts from Kineto alone: host None). Host traces without a Kineto
    trace take the rank their name spells.
    """
    folder = Path(directory)
    if not folder.is_dir():
        raise TraceConversionError(f"{folder}: not a directory")
    hosts: list[_Found] = []
    kinetos: list[_Found] = []
    for path in sorted(folder.iterdir()):
        if not path.is_file() or not path.name.endswith((".json", ".json.gz")):
            continue
        head = _head(path)
        kind = _kind(head)
        if not kind:
            continue  # some other JSON file: not a trace
        found = _Found(path, head, rank_from_name(path.name))
        if kind == "host":
            match = _HOST_PID.search(head)
            found.pid = int(match.group(1)) if match else None
            hosts.append(found)
        else:
            kinetos.append(found)
    if not hosts and not kinetos:
        raise TraceConversionError(
            f"{folder}: no host execution traces or Kineto traces (*.json, *.json.gz)"
        )
    pairs: dict[int, tuple[Path | None, Path | None]] = {}
    taken: set[Path] = set()
    kineto_of: dict[int, Path] = {}
    for kineto in kinetos:
        rank = _kineto_rank(kineto)
        if rank in kineto_of:
            raise TraceConversionError(
                f"{folder}: two Kineto traces for rank {rank}: "
                f"{kineto_of[rank].name}, {kineto.path.name}"
            )
        kineto_of[rank] = kineto.path
        by_pid = [
            h
            for h in hosts
            if h.pid is not None and re.search(rf'"pid"\s*:\s*{h.pid}\b', kineto.head)
        ]
        if len(by_pid) > 1:
            by_pid = [h for h in by_pid if h.name_rank == rank] or by_pid[:1]
        host = by_pid[0] if by_pid else next((h for h in hosts if h.name_rank == rank), None)
        if host is not None and host.path in taken:
            raise TraceConversionError(
                f"{folder}: host trace {host.path.name} fits the Kineto traces of two ranks"
            )
        if host is not None:
            taken.add(host.path)
        pairs[rank] = (host.path if host is not None else None, kineto.path)
    for host in hosts:
        if host.path in taken:
            continue
        if host.name_rank is None:
            raise TraceConversionError(
                f"{host.path}: host trace with no Kineto trace of its pid and no rank in its name"
            )
        if host.name_rank in pairs:
            other = pairs[host.name_rank][0] or pairs[host.name_rank][1]
            raise TraceConversionError(
                f"{folder}: two traces for rank {host.name_rank}: "
                f"{other.name if other else '?'}, {host.path.name}"
            )
        pairs[host.name_rank] = (host.path, None)
    return {rank: pairs[rank] for rank in sorted(pairs)}
