"""Process groups of a traced run: which global ranks each ``pg_name`` spans.

The host trace's ``## process_group:init ##`` node lists every group (its ``ranks`` is empty
when a group spans the whole world); Kineto's ``distributedInfo`` lists them with ranks, plus
the own rank and world size. Both are merged here, and written into the ET's GlobalMetadata as
``pg_names`` (string list), ``pg_ranks:<name>`` (int64 list), ``pg_desc:<name>``, ``rank``
and ``world_size``, so the engine can place every collective on the ranks it really spans.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from trainsim.chakra_et.convert._host_et import HostTrace

__all__ = ["PG_INIT_NAME", "ProcessGroup", "ProcessGroups", "read_process_groups"]

PG_INIT_NAME = "## process_group:init ##"


@dataclass
class ProcessGroup:
    """One process group: its name (``pg_name``), description, backend and global ranks."""

    name: str
    desc: str = ""
    backend: str = ""
    ranks: list[int] = field(default_factory=list)
    size: int = 0
    backend_id: int | None = None


@dataclass
class ProcessGroups:
    """Every group of the run with the own rank and world size (None when the trace lacks it)."""

    groups: dict[str, ProcessGroup] = field(default_factory=dict)
    rank: int | None = None
    world_size: int | None = None
    backend: str = ""

    @property
    def default(self) -> ProcessGroup | None:
        """The default (world) group: ``default_pg``, else the first one listed."""
        for group in self.groups.values():
            if group.desc == "default_pg":
                return group
        return next(iter(self.groups.values()), None)

    def by_backend_id(self, backend_id: int) -> ProcessGroup | None:
        """The group whose backend object id is ``backend_id`` (schema 1.0.2 names groups so)."""
        for group in self.groups.values():
            if group.backend_id == backend_id:
                return group
        return None

    def global_rank(self, pg_name: str | None, group_rank: int) -> int:
        """Global rank of ``group_rank`` in group ``pg_name`` (unchanged when ranks are unknown)."""
        group = self.groups.get(pg_name) if pg_name is not None else self.default
        if group is not None and 0 <= group_rank < len(group.ranks):
            return group.ranks[group_rank]
        return group_rank

    def metadata_attrs(self) -> dict[str, Any]:
        """GlobalMetadata attributes describing the groups (see the module docstring)."""
        attrs: dict[str, Any] = {}
        if self.rank is not None:
            attrs["rank"] = self.rank
        if self.world_size is not None:
            attrs["world_size"] = self.world_size
        if self.backend:
            attrs["comm_backend"] = self.backend
        if self.groups:
            attrs["pg_names"] = list(self.groups)
        for group in self.groups.values():
            attrs[f"pg_ranks:{group.name}"] = list(group.ranks)
            if group.desc:
                attrs[f"pg_desc:{group.name}"] = group.desc
        return attrs


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _from_host(host: HostTrace, groups: ProcessGroups) -> None:
    for op in host.ops:
        if op.name != PG_INIT_NAME or not op.inputs or not isinstance(op.inputs[0], str):
            continue
        try:
            entries = json.loads(op.inputs[0])
        except json.JSONDecodeError:
            continue  # the report counts the node; an unreadable payload only loses group info
        if not isinstance(entries, list):
            continue
        for entry in entries:
            if not isinstance(entry, dict) or "pg_name" not in entry:
                continue
            name = str(entry["pg_name"])
            ranks = entry.get("ranks")
            size = _int(entry.get("group_size")) or 0
            groups.groups[name] = ProcessGroup(
                name,
                desc=str(entry.get("pg_desc", "")),
                backend=str(entry.get("backend_config", "")),
                ranks=[r for r in ranks if _int(r) is not None] if isinstance(ranks, list) else [],
                size=size,
                backend_id=_int(entry.get("backend_id")),
            )
        return


def _from_kineto(info: dict[str, Any], groups: ProcessGroups) -> None:
    groups.rank = _int(info.get("rank"))
    groups.world_size = _int(info.get("world_size"))
    backend = info.get("backend")
    groups.backend = backend if isinstance(backend, str) else ""
    configs = info.get("pg_config")
    if not isinstance(configs, list):
        return
    for entry in configs:
        if not isinstance(entry, dict) or "pg_name" not in entry:
            continue
        name = str(entry["pg_name"])
        group = groups.groups.setdefault(name, ProcessGroup(name))
        ranks = entry.get("ranks")
        if isinstance(ranks, list) and ranks and not group.ranks:
            group.ranks = [r for r in ranks if _int(r) is not None]
        group.desc = group.desc or str(entry.get("pg_desc", ""))
        group.backend = group.backend or str(entry.get("backend_config", ""))
        group.size = group.size or (_int(entry.get("pg_size")) or len(group.ranks))


def read_process_groups(
    host: HostTrace,
    distributed_info: dict[str, Any] | None = None,
    *,
    rank: int | None = None,
    world_size: int | None = None,
) -> ProcessGroups:
    """Merge the groups of the host trace and Kineto ``distributedInfo``; fill implied ranks."""
    groups = ProcessGroups()
    _from_host(host, groups)
    if distributed_info:
        _from_kineto(distributed_info, groups)
    if rank is not None:
        groups.rank = rank
    if world_size is not None:
        groups.world_size = world_size
    if groups.world_size is None:
        default = groups.default
        if default is not None and default.size:
            groups.world_size = default.size
    for group in groups.groups.values():
        # An empty rank list with the world's size is how the host trace writes a world group.
        if not group.ranks and group.size and group.size == groups.world_size:
            group.ranks = list(range(group.size))
        group.size = group.size or len(group.ranks)
    return groups
