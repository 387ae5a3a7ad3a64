"""``Workload``: the ET graphs a simulation runs and the process groups their collectives name.

A workload is a set of simulated ranks, each with its ET graph, and a table of process groups
(``pg_name`` -> global ranks). In *per-rank* mode every rank of the job is simulated; in
*rank-class* mode one representative per class is, and ``multiplicity`` says how many ranks
each stands for (SPMD peers in TP/DP/CP/EP groups run the same program). Groups come from an
ASTRA-sim comm-group file (``{"1": [0, 1]}``), from the ``process_groups`` GlobalMetadata
attribute the generator and converter write, or are given directly; an empty ``pg_name`` or
``"0"`` without an entry means the whole world.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from trainsim import chakra_et
from trainsim.chakra_et import ETGraph
from trainsim.engine._errors import WorkloadError

__all__ = ["Workload", "groups_from_metadata", "load_comm_groups", "load_workload"]

_RANK_FILE = re.compile(r"^(?P<prefix>.+?)\.(?P<rank>\d+)\.et(?:\.gz)?$")


@dataclass
class Workload:
    """Simulated ranks with their graphs, the job's world size and its process groups."""

    graphs: dict[int, ETGraph]
    world_size: int
    groups: dict[str, tuple[int, ...]] = field(default_factory=dict)
    group_kinds: dict[str, str] = field(default_factory=dict)
    multiplicity: dict[int, int] = field(default_factory=dict)
    name: str = "workload"

    def __post_init__(self) -> None:
        if not self.graphs:
            raise WorkloadError(f"{self.name}: no ET graphs")
        bad = [r for r in self.graphs if not 0 <= r < self.world_size]
        if bad:
            raise WorkloadError(f"{self.name}: ranks {bad} outside world size {self.world_size}")
        for pg, ranks in self.groups.items():
            outside = [r for r in ranks if not 0 <= r < self.world_size]
            if outside:
                raise WorkloadError(
                    f"{self.name}: process group {pg!r} names ranks {outside} outside world "
                    f"size {self.world_size}"
                )
        for rank in self.graphs:
            self.multiplicity.setdefault(rank, 1)

    @property
    def per_rank(self) -> bool:
        """True when every rank of the job is simulated."""
        return len(self.graphs) == self.world_size

    @property
    def num_nodes(self) -> int:
        """Total nodes over the simulated graphs."""
        return sum(len(g) for g in self.graphs.values())

    def group_ranks(self, pg_name: str) -> tuple[int, ...]:
        """Global ranks of process group ``pg_name`` (the world for ``""``/``"0"`` if unnamed)."""
        ranks = self.groups.get(pg_name)
        if ranks is not None:
            return ranks
        if pg_name in ("", "0"):
            return tuple(range(self.world_size))
        known = ", ".join(sorted(self.groups)[:10]) or "none"
        raise WorkloadError(f"{self.name}: unknown process group {pg_name!r} (known: {known})")

    @classmethod
    def from_graphs(
        cls,
        graphs: Mapping[int, ETGraph],
        *,
        world_size: int | None = None,
        groups: Mapping[str, tuple[int, ...] | list[int]] | None = None,
        multiplicity: Mapping[int, int] | None = None,
        name: str = "workload",
    ) -> Workload:
        """Build a workload; groups default to those recorded in the graphs' metadata."""
        table: dict[str, tuple[int, ...]] = {}
        kinds: dict[str, str] = {}
        meta_world = 0
        for graph in graphs.values():
            found, found_kinds = groups_from_metadata(graph)
            table.update(found)
            kinds.update(found_kinds)
            size = chakra_et.get_attr(graph.metadata, "world_size")
            if isinstance(size, int):
                meta_world = max(meta_world, size)
        if groups:
            table.update({str(k): tuple(int(r) for r in v) for k, v in groups.items()})
        world = world_size or meta_world or max(graphs) + 1
        return cls(
            graphs=dict(graphs),
            world_size=world,
            groups=table,
            group_kinds=kinds,
            multiplicity=dict(multiplicity or {}),
            name=name,
        )


def groups_from_metadata(graph: ETGraph) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """Process groups recorded in a graph's metadata.

    Two spellings are read: the generator's ``process_groups`` JSON attribute
    (``{"<pg>": {"kind": ..., "ranks": [...]}}``) and the converter's one int-list attribute
    per group, ``pg_ranks:<pg>``.
    """
    groups: dict[str, tuple[int, ...]] = {}
    for attr in graph.metadata.attr:
        if attr.name.startswith("pg_ranks:"):
            values = chakra_et.attr_value(attr)
            if not isinstance(values, list) or not all(isinstance(r, int) for r in values):
                raise WorkloadError(f"metadata {attr.name}: ranks must be a list of integers")
            groups[attr.name.removeprefix("pg_ranks:")] = tuple(int(str(r)) for r in values)
    raw = chakra_et.get_attr(graph.metadata, "process_groups")
    if not isinstance(raw, str) or not raw:
        return groups, {}
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise WorkloadError(f"process_groups metadata is not JSON: {exc.msg}") from None
    kinds: dict[str, str] = {}
    if not isinstance(data, dict):
        raise WorkloadError("process_groups metadata must be a JSON object")
    for pg, entry in data.items():
        if isinstance(entry, dict):
            members = entry.get("ranks", [])
            if "kind" in entry:
                kinds[str(pg)] = str(entry["kind"])
        else:
            members = entry
        if not isinstance(members, list) or not all(isinstance(r, int) for r in members):
            raise WorkloadError(f"process_groups metadata: group {pg!r} ranks must be integers")
        groups[str(pg)] = tuple(members)
    return groups, kinds


def load_comm_groups(path: str | Path) -> dict[str, tuple[int, ...]]:
    """Read an ASTRA-sim comm-group file: ``{"<group id>": [ranks...], ...}``."""
    source = Path(path)
    try:
        data = json.loads(source.read_text())
    except json.JSONDecodeError as exc:
        raise WorkloadError(f"{source}: not valid JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(data, dict):
        raise WorkloadError(f"{source}: expected an object of group id -> list of ranks")
    groups: dict[str, tuple[int, ...]] = {}
    for key, ranks in data.items():
        if not isinstance(ranks, list) or not all(
            isinstance(r, int) and not isinstance(r, bool) for r in ranks
        ):
            raise WorkloadError(f"{source}: group {key!r} must be a list of integer ranks")
        groups[str(key)] = tuple(ranks)
    return groups


def _rank_files(location: str | Path) -> tuple[str, dict[int, Path]]:
    """Find ``NAME.R.et`` files: a directory holding them, or an ASTRA-sim style prefix."""
    path = Path(location)
    if path.is_dir():
        candidates = sorted(path.iterdir())
        prefix_filter = None
    else:
        candidates = sorted(path.parent.glob(f"{path.name}.*"))
        prefix_filter = path.name
    found: dict[str, dict[int, Path]] = {}
    for candidate in candidates:
        match = _RANK_FILE.match(candidate.name)
        if not match or (prefix_filter is not None and match["prefix"] != prefix_filter):
            continue
        found.setdefault(match["prefix"], {})[int(match["rank"])] = candidate
    if not found:
        raise WorkloadError(f"{location}: no NAME.R.et files found")
    if len(found) > 1:
        names = ", ".join(sorted(found))
        raise WorkloadError(f"{location}: several workloads ({names}); pass a prefix DIR/NAME")
    prefix, files = next(iter(found.items()))
    return prefix, files


def load_workload(
    location: str | Path,
    *,
    comm_groups: str | Path | None = None,
    world_size: int | None = None,
) -> Workload:
    """Load per-rank ET files from a directory or a prefix (``DIR/NAME`` for ``NAME.R.et``).

    Every rank from 0 to the highest found must be present; the world size is the number of
    files unless the metadata or ``world_size`` says otherwise (rank-class workloads).
    """
    prefix, files = _rank_files(location)
    graphs = {rank: chakra_et.load(path) for rank, path in sorted(files.items())}
    groups = load_comm_groups(comm_groups) if comm_groups else None
    multiplicity: dict[int, int] = {}
    for rank, graph in graphs.items():
        count = chakra_et.get_attr(graph.metadata, "rank_multiplicity")
        if isinstance(count, int) and count > 0:
            multiplicity[rank] = count
    workload = Workload.from_graphs(
        graphs, world_size=world_size, groups=groups, multiplicity=multiplicity, name=prefix
    )
    if world_size is None and not multiplicity:
        missing = sorted(set(range(max(files) + 1)) - set(files))
        if missing and workload.world_size == max(files) + 1:
            raise WorkloadError(f"{location}: rank files missing for ranks {missing[:10]}")
    return workload
