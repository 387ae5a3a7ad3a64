"""The node the ET builder works on before it writes a Chakra node: timing on the trace clock,
its unit and thread, and the GPU-side dependencies found for it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trainsim.chakra_et.convert._units import Unit
from trainsim.chakra_et.schema import NodeType

__all__ = ["COMP_NODE", "ThreadKey", "_Node"]

#: (trace kind, thread id) of a host op's thread.
ThreadKey = tuple[str, int | str]
# A plain int: attribute lookups on protobuf enum wrappers are slow in per-node loops.
COMP_NODE = int(NodeType.COMP_NODE)


@dataclass(slots=True)
class _Node:
    """A node to be written, with its timing on the trace clock."""

    unit: Unit | None
    name: str
    node_type: int
    start_us: float | None
    end_us: float | None
    duration_us: float
    thread: ThreadKey | None
    order_key: tuple[float, int, int]
    attrs: dict[str, Any] = field(default_factory=dict)
    in_chain: bool = True
    stream: int | None = None
    launcher: Unit | None = None
    et_id: int = -1
    deps: list[int] = field(default_factory=list)
    # GPU-side predecessors (stream order, cross-stream waits, or what a host sync waited for).
    gpu_deps: list[_Node] = field(default_factory=list)
    # A GPU-timed collective: where its c10d op's CPU span ended (its issue on the thread).
    issue_end_us: float | None = None
    # The report entry of a communication node, given its written duration at the end.
    record: dict[str, Any] | None = None
