"""A one-screen summary of an ET graph: what ``trainsim et info`` prints."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from trainsim.chakra_et._attrs import get_attr
from trainsim.chakra_et._graph import ETGraph, node_type_name
from trainsim.chakra_et.schema import CollectiveCommType, NodeType

__all__ = ["ETSummary", "summarize"]


@dataclass
class ETSummary:
    """Counts and totals of one ET graph."""

    source: str
    version: str
    nodes: int
    nodes_by_type: dict[str, int]
    collectives: dict[str, dict[str, int]] = field(default_factory=dict)
    p2p: dict[str, dict[str, int]] = field(default_factory=dict)
    compute_time_us: int = 0
    comm_time_us: int = 0
    critical_path_us: int = 0
    critical_path_nodes: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form for JSON output."""
        return asdict(self)

    def format(self) -> str:
        """Human-readable multi-line text."""
        lines = [f"{self.source}: Chakra ET version {self.version or '?'}, {self.nodes} nodes"]
        for name, count in sorted(self.nodes_by_type.items()):
            lines.append(f"  {name:<16} {count:>10,}")
        for title, table in (("collectives", self.collectives), ("point-to-point", self.p2p)):
            if table:
                lines.append(f"  {title}:")
                for name, row in sorted(table.items()):
                    lines.append(f"    {name:<22} {row['count']:>8,} x  {row['bytes']:>16,} bytes")
        lines.append(f"  compute time      {self.compute_time_us:>14,} us (sum of COMP durations)")
        if self.comm_time_us:
            lines.append(
                f"  comm time         {self.comm_time_us:>14,} us (sum of recorded durations)"
            )
        path_us, path_nodes = self.critical_path_us, self.critical_path_nodes
        lines.append(f"  critical path     {path_us:>14,} us over {path_nodes} nodes")
        return "\n".join(lines)


def _collective_name(value: object) -> str:
    if isinstance(value, int) and value in CollectiveCommType.values():
        return CollectiveCommType.Name(value)
    return f"UNKNOWN_{value}"


def summarize(graph: ETGraph, source: str = "graph") -> ETSummary:
    """Summarize a graph; the critical path needs a DAG (raises ``ETValidationError`` if cyclic)."""
    summary = ETSummary(
        source=source,
        version=graph.metadata.version,
        nodes=len(graph),
        nodes_by_type=graph.count_by_type(),
    )
    for node in graph.node_list:
        if node.type == NodeType.COMP_NODE:
            summary.compute_time_us += node.duration_micros
            continue
        if node.type == NodeType.COMM_COLL_NODE:
            table, key = summary.collectives, _collective_name(get_attr(node, "comm_type"))
        elif node.type in (NodeType.COMM_SEND_NODE, NodeType.COMM_RECV_NODE):
            table, key = summary.p2p, node_type_name(node.type)
        else:
            continue
        summary.comm_time_us += node.duration_micros
        size = get_attr(node, "comm_size", 0)
        row = table.setdefault(key, {"count": 0, "bytes": 0})
        row["count"] += 1
        row["bytes"] += size if isinstance(size, int) else 0
    length, path = graph.critical_path()
    summary.critical_path_us, summary.critical_path_nodes = length, len(path)
    return summary
