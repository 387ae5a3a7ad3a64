"""``ETGraph``: an in-memory Chakra ET with dependency queries, order and critical path."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

from trainsim.chakra_et._attrs import make_attr
from trainsim.chakra_et._errors import ETValidationError, Problem
from trainsim.chakra_et.schema import GlobalMetadata, Node, NodeType

if TYPE_CHECKING:
    import networkx as nx

__all__ = ["DEFAULT_SCHEMA_VERSION", "ETGraph", "new_metadata", "new_node", "node_type_name"]

#: Version string written by trainsim into GlobalMetadata (the Chakra schema it follows).
DEFAULT_SCHEMA_VERSION = "0.0.4"


def node_type_name(node_type: int) -> str:
    """Name of a ``NodeType`` value (``"COMP_NODE"``), or ``"UNKNOWN_<n>"`` for other numbers."""
    try:
        return NodeType.Name(node_type)
    except ValueError:
        return f"UNKNOWN_{node_type}"


def new_metadata(
    version: str = DEFAULT_SCHEMA_VERSION, attrs: Mapping[str, object] | None = None
) -> GlobalMetadata:
    """Build a ``GlobalMetadata`` message with the given attributes."""
    meta = GlobalMetadata(version=version)
    for name, value in (attrs or {}).items():
        meta.attr.append(make_attr(name, value))
    return meta


def new_node(
    node_id: int,
    name: str,
    node_type: int,
    *,
    duration_micros: int = 0,
    ctrl_deps: Iterable[int] = (),
    data_deps: Iterable[int] = (),
    attrs: Mapping[str, object] | None = None,
) -> Node:
    """Build a ``Node``; reserved attribute names get the exact Chakra oneof types."""
    node = Node(id=node_id, name=name, type=node_type, duration_micros=duration_micros)  # type: ignore[arg-type]
    node.ctrl_deps.extend(ctrl_deps)
    node.data_deps.extend(data_deps)
    for attr_name, value in (attrs or {}).items():
        node.attr.append(make_attr(attr_name, value))
    return node


class ETGraph:
    """A whole Chakra ET in memory: metadata plus nodes in file order.

    Nodes are kept as the protobuf messages they were read as, so attributes and fields this
    project does not interpret survive a round trip. Dependencies are the union of
    ``data_deps`` and ``ctrl_deps``; a node runs after all of them.
    """

    def __init__(self, metadata: GlobalMetadata | None = None, nodes: Iterable[Node] = ()) -> None:
        self.metadata = metadata if metadata is not None else new_metadata()
        self._node_list: list[Node] = list(nodes)
        self._by_id: dict[int, Node] | None = None
        self._children: dict[int, list[int]] | None = None

    # -- container -------------------------------------------------------------------------
    def add(self, node: Node) -> Node:
        """Append a node (in file order) and return it."""
        self._node_list.append(node)
        self._by_id = None
        self._children = None
        return node

    @property
    def node_list(self) -> list[Node]:
        """Nodes in file order, duplicates included (validation reports them)."""
        return self._node_list

    @property
    def nodes(self) -> dict[int, Node]:
        """Nodes by id; with duplicate ids the first one wins."""
        if self._by_id is None:
            by_id: dict[int, Node] = {}
            for node in self._node_list:
                by_id.setdefault(node.id, node)
            self._by_id = by_id
        return self._by_id

    def __len__(self) -> int:
        return len(self._node_list)

    def __iter__(self) -> Iterator[Node]:
        return iter(self._node_list)

    def __getitem__(self, node_id: int) -> Node:
        return self.nodes[node_id]

    def __contains__(self, node_id: object) -> bool:
        return node_id in self.nodes

    def __repr__(self) -> str:
        counts = ", ".join(f"{k}={v}" for k, v in sorted(self.count_by_type().items()))
        return f"ETGraph(version={self.metadata.version!r}, nodes={len(self)}: {counts})"

    def count_by_type(self) -> dict[str, int]:
        """Number of nodes of each ``NodeType`` name."""
        return dict(Counter(node_type_name(n.type) for n in self._node_list))

    # -- dependencies ----------------------------------------------------------------------
    @staticmethod
    def deps(node: Node) -> list[int]:
        """Ids a node depends on: data dependencies then control dependencies, no repeats."""
        if not node.ctrl_deps:
            return list(dict.fromkeys(node.data_deps))
        return list(dict.fromkeys([*node.data_deps, *node.ctrl_deps]))

    def parents(self, node_id: int) -> list[int]:
        """Ids of the nodes ``node_id`` depends on."""
        return self.deps(self.nodes[node_id])

    def children(self, node_id: int) -> list[int]:
        """Ids of the nodes that depend on ``node_id``."""
        if self._children is None:
            children: dict[int, list[int]] = {nid: [] for nid in self.nodes}
            for node in self.nodes.values():
                for dep in self.deps(node):
                    if dep in children:
                        children[dep].append(node.id)
            self._children = children
        return self._children[node_id]

    def roots(self) -> list[int]:
        """Ids of nodes with no dependencies."""
        return [n.id for n in self.nodes.values() if not n.data_deps and not n.ctrl_deps]

    def topological_order(self) -> list[int]:
        """Node ids so that every node comes after its dependencies; ties keep file order.

        A dependency on a node that is not in the graph counts as satisfied (the official
        converter writes such edges to nodes it dropped; validation warns about them). Raises
        ``ETValidationError`` naming a cycle when no order exists.
        """
        nodes = self.nodes
        indegree = {n.id: sum(1 for d in self.deps(n) if d in nodes) for n in nodes.values()}
        ready = [nid for nid, deg in indegree.items() if deg == 0]
        ready.reverse()  # pop() from the end keeps file order among ready nodes
        order: list[int] = []
        while ready:
            nid = ready.pop()
            order.append(nid)
            released = []
            for child in self.children(nid):
                indegree[child] -= 1
                if indegree[child] == 0:
                    released.append(child)
            ready.extend(reversed(released))
        if len(order) != len(nodes):
            cycle = self.find_cycle()
            path = " -> ".join(str(c) for c in cycle)
            raise ETValidationError([Problem(cycle[0], "deps", f"dependency cycle {path}")])
        return order

    def find_cycle(self) -> list[int]:
        """Return one dependency cycle as ids ``[a, b, ..., a]`` (empty when the graph is a DAG)."""
        nodes = self.nodes
        state: dict[int, int] = {}  # 1 = on the DFS stack, 2 = done
        for start in nodes:
            if start in state:
                continue
            stack: list[tuple[int, Iterator[int]]] = [(start, iter(self.deps(nodes[start])))]
            path = [start]
            state[start] = 1
            while stack:
                nid, it = stack[-1]
                advanced = False
                for dep in it:
                    if dep not in nodes:
                        continue
                    if state.get(dep) == 1:
                        cycle = [*path[path.index(dep) :], dep]
                        cycle.reverse()  # dependency edges point backwards in time
                        return cycle
                    if dep not in state:
                        state[dep] = 1
                        stack.append((dep, iter(self.deps(nodes[dep]))))
                        path.append(dep)
                        advanced = True
                        break
                if not advanced:
                    state[nid] = 2
                    stack.pop()
                    path.pop()
        return []

    def critical_path(self) -> tuple[int, list[int]]:
        """Longest chain of dependent nodes by ``duration_micros``: (length in µs, node ids)."""
        nodes = self.nodes
        finish: dict[int, int] = {}
        best_parent: dict[int, int | None] = {}
        for nid in self.topological_order():
            node = nodes[nid]
            start, parent = 0, None
            for dep in self.deps(node):
                if dep not in finish:  # dependency on a node outside the graph
                    continue
                if finish[dep] > start or (parent is None and finish[dep] == start):
                    start, parent = finish[dep], dep
            finish[nid] = start + node.duration_micros
            best_parent[nid] = parent
        if not finish:
            return 0, []
        end = max(finish, key=lambda k: finish[k])
        path: list[int] = []
        cursor: int | None = end
        while cursor is not None:
            path.append(cursor)
            cursor = best_parent[cursor]
        path.reverse()
        return finish[end], path

    def to_networkx(self) -> nx.DiGraph:
        """A networkx ``DiGraph`` with an edge dependency -> dependent (``kind`` data/ctrl).

        Node attributes: ``name``, ``type`` (name), ``duration_micros`` and ``node`` (the message).
        """
        import networkx as nx

        graph = nx.DiGraph()
        for node in self.nodes.values():
            graph.add_node(
                node.id,
                name=node.name,
                type=node_type_name(node.type),
                duration_micros=node.duration_micros,
                node=node,
            )
        for node in self.nodes.values():
            for dep in node.data_deps:
                graph.add_edge(dep, node.id, kind="data")
            for dep in node.ctrl_deps:
                if not graph.has_edge(dep, node.id):
                    graph.add_edge(dep, node.id, kind="ctrl")
        return graph
