"""Compile one rank's ET graph into flat arrays the event loop runs on.

Each node becomes an index (file order) with a kind, a duration (compute, memory), its
children and in-degree, and, for communication, what it needs to be matched and costed. Doing
this once keeps the event loop free of protobuf access and attribute lookups.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from trainsim import chakra_et
from trainsim.chakra_et import CollectiveCommType, ETGraph, NodeType, attr_value
from trainsim.engine._errors import WorkloadError
from trainsim.models import (
    COMM_BESIDE_ATTR,
    COMM_SMS_ATTR,
    ROOFLINE_ATTR,
    DeviceSpec,
    ModelsError,
    roofline_time_us,
)

__all__ = [
    "COLLECTIVE_OPS",
    "KIND_NAMES",
    "K_COLL",
    "K_COMP",
    "K_CPU",
    "K_MEM",
    "K_NOOP",
    "K_RECV",
    "K_SEND",
    "Program",
    "compile_program",
    "stretch_beside",
]

K_COMP, K_CPU, K_COLL, K_SEND, K_RECV, K_MEM, K_NOOP = range(7)
KIND_NAMES = ("compute", "cpu", "collective", "send", "recv", "memory", "noop")

#: Chakra collective type -> the operation name the collectives package takes.
COLLECTIVE_OPS: dict[int, str] = {
    int(CollectiveCommType.ALL_REDUCE): "all_reduce",
    int(CollectiveCommType.REDUCE): "reduce",
    int(CollectiveCommType.ALL_GATHER): "all_gather",
    int(CollectiveCommType.GATHER): "gather",
    int(CollectiveCommType.SCATTER): "scatter",
    int(CollectiveCommType.BROADCAST): "broadcast",
    int(CollectiveCommType.ALL_TO_ALL): "all_to_all",
    int(CollectiveCommType.REDUCE_SCATTER): "reduce_scatter",
    int(CollectiveCommType.REDUCE_SCATTER_BLOCK): "reduce_scatter",
    int(CollectiveCommType.BARRIER): "barrier",
}

_COMP = int(NodeType.COMP_NODE)
_COLL = int(NodeType.COMM_COLL_NODE)
_SEND = int(NodeType.COMM_SEND_NODE)
_RECV = int(NodeType.COMM_RECV_NODE)
_MEM = (int(NodeType.MEM_LOAD_NODE), int(NodeType.MEM_STORE_NODE))
_COLL_ATTRS = frozenset(("comm_type", "comm_size", "pg_name", "stream"))
_ROOFLINE_ATTRS = frozenset(
    ("num_ops", "tensor_size", "dtype", "gemm_shape", COMM_SMS_ATTR, COMM_BESIDE_ATTR)
)


@dataclass
class Program:
    """One simulated rank's graph as flat arrays (index = position in file order)."""

    rank: int
    ids: list[int]
    names: list[str]
    kinds: list[int]
    duration_ns: list[float]
    children: list[list[int]]
    indegree: list[int]
    #: collective index -> (operation, size in bytes, pg_name)
    collectives: dict[int, tuple[str, int, str]] = field(default_factory=dict)
    #: send/recv index -> (src rank, dst rank, tag, size in bytes)
    p2p: dict[int, tuple[int, int, int, int]] = field(default_factory=dict)
    #: collective index -> the node's ``stream`` attribute (group kind), when present
    streams: dict[int, str] = field(default_factory=dict)
    #: send/recv index -> the node's ``stream`` attribute (group kind, ``pp`` for the
    #: generator's pipeline exchanges), when present; kept apart from ``streams``, which
    #: assigns communication slots, because a receive takes none
    p2p_streams: dict[int, str] = field(default_factory=dict)
    #: compute index -> (indices of the collectives beside it, SMs they hold): its duration
    #: is stretched for their time (``stretch_beside``)
    beside: dict[int, tuple[tuple[int, ...], int]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)


def _int(node: chakra_et.Node, name: str, default: int | None = None) -> int | None:
    value = chakra_et.get_attr(node, name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise WorkloadError(
            f"node {node.id} ({node.name}): {name} must be an integer, got {value!r}"
        )
    return value


def _assume_p2p(
    rank: int,
    node: chakra_et.Node,
    world_size: int,
    peer: int | None,
    tag: int | None,
    size: int | None,
    notes: list[str],
) -> tuple[int, int, int]:
    """Return (peer, tag, size) of a send/recv, filling in what the official generator omits.

    Its micro-benchmarks write p2p nodes with only ``tensor_size`` (ASTRA-sim refuses them).
    In a two-rank job the peer can only be the other rank; the size is ``tensor_size`` and
    the tag 0. Anything else is ambiguous and raises ``WorkloadError``.
    """
    what = f"rank {rank}: node {node.id} ({node.name})"
    if peer is None:
        if world_size != 2:
            raise WorkloadError(f"{what} has no peer rank (comm_src/comm_dst)")
        peer = 1 - rank
        notes.append(f"{what}: no peer rank; assumed rank {peer}, the other rank of two")
    if size is None:
        size = _int(node, "tensor_size")
        if size is None:
            raise WorkloadError(f"{what} has no comm_size (nor tensor_size)")
        notes.append(f"{what}: no comm_size; assumed tensor_size = {size} bytes")
    if tag is None:
        tag = 0
        notes.append(f"{what}: no comm_tag; assumed tag 0")
    return peer, tag, size


def compile_program(
    rank: int,
    graph: ETGraph,
    device: DeviceSpec | None,
    *,
    dtype: str = "bf16",
    duration_scale: float = 1.0,
    min_op_ns: float = 0.0,
    memory_bandwidth_gbps: float = 50.0,
    world_size: int = 0,
    notes: list[str] | None = None,
) -> Program:
    """Flatten ``graph`` for rank ``rank``; compute nodes get their duration here.

    A compute node costs its ``duration_micros`` (times ``duration_scale``) when it has one, the
    sum of its operations' rooflines when it lists them (``roofline_ops``, see
    ``models.roofline_time_us``), or the device roofline of its ``num_ops`` and ``tensor_size``
    otherwise (with the GEMM efficiency of its ``gemm_shape`` ``[m, n, k]`` when it states one,
    on the SMs that the communication beside it leaves, ``comm_sms``).
    A send or receive missing its peer, tag or size is completed by ``_assume_p2p`` where that
    is unambiguous, with a line in ``notes`` saying what was assumed.
    """
    if notes is None:
        notes = []
    nodes = graph.node_list
    count = len(nodes)
    ids = [n.id for n in nodes]
    index = {node_id: i for i, node_id in enumerate(ids)}
    if len(index) != count:
        raise WorkloadError(f"rank {rank}: duplicate node ids; run `trainsim et validate`")
    program = Program(
        rank=rank,
        ids=ids,
        names=[n.name for n in nodes],
        kinds=[K_NOOP] * count,
        duration_ns=[0.0] * count,
        children=[[] for _ in nodes],
        indegree=[0] * count,
    )
    children, indegree, kinds, durations = (
        program.children,
        program.indegree,
        program.kinds,
        program.duration_ns,
    )
    index_get = index.get
    roofline_ns: dict[tuple[tuple[int, ...], str, int], float] = {}
    # Repeated-field access on protobuf messages costs ~0.5 µs each: read each field once.
    for i, node in enumerate(nodes):
        ctrl = node.ctrl_deps
        deps: Iterable[int] = node.data_deps
        if ctrl:
            deps = dict.fromkeys([*deps, *ctrl])
        for dep in deps:
            j = index_get(dep)
            if j is None:  # dependency on a dropped node: satisfied (as validation warns)
                continue
            if j == i:
                raise WorkloadError(f"rank {rank}: node {ids[i]} ({node.name}) depends on itself")
            children[j].append(i)
            indegree[i] += 1
        node_type = node.type
        if node_type == _COMP:
            cpu, flops, size, node_dtype, comm_sms = False, 0, 0, dtype, 0
            beside: tuple[int, ...] = ()
            shape: tuple[int, int, int] | None = None
            ops: tuple[int, ...] | None = None
            attrs = node.attr
            if attrs:
                for attr in attrs:
                    name = attr.name
                    if name == "is_cpu_op":
                        cpu = attr_value(attr) is True
                    elif name == ROOFLINE_ATTR:
                        # Read the packed list directly: layer nodes repeat a few distinct ones.
                        ops = tuple(attr.int64_list.values)
                    elif name in _ROOFLINE_ATTRS:
                        value = attr_value(attr)
                        if name == "dtype":
                            node_dtype = str(value)
                        elif name == "gemm_shape":
                            if isinstance(value, list) and len(value) == 3:
                                shape = (int(value[0]), int(value[1]), int(value[2]))
                        elif name in (COMM_SMS_ATTR, COMM_BESIDE_ATTR):
                            raw = value if isinstance(value, list) else [value]
                            listed = [
                                v for v in raw if isinstance(v, int) and not isinstance(v, bool)
                            ]
                            single = name == COMM_SMS_ATTR
                            if not listed or len(listed) != len(raw) or (single and len(raw) > 1):
                                what = "an integer" if single else "node ids"
                                raise WorkloadError(
                                    f"rank {rank}: node {node.id} ({node.name}): {name} must "
                                    f"be {what}, got {value!r}"
                                )
                            if single:
                                comm_sms = listed[0]
                            else:
                                beside = tuple(listed)
                        elif isinstance(value, int) and not isinstance(value, bool):
                            flops, size = (value, size) if name == "num_ops" else (flops, value)
            kinds[i] = K_CPU if cpu else K_COMP
            if beside and comm_sms:
                program.beside[i] = (beside, comm_sms)  # ids until resolved below
                comm_sms = 0  # held only while that collective runs: stretch_beside
            micros = node.duration_micros
            if micros:
                duration = micros * 1000.0 * duration_scale
            elif ops and device is not None:
                try:
                    key = (ops, node_dtype, comm_sms)
                    cached = roofline_ns.get(key)
                    if cached is None:
                        cached = roofline_ns[key] = (
                            roofline_time_us(device, ops, node_dtype, comm_sms=comm_sms) * 1000.0
                        )
                    duration = cached
                except (ValueError, ModelsError) as exc:
                    raise WorkloadError(
                        f"rank {rank}: node {node.id} ({node.name}): {exc}"
                    ) from None
            elif (flops or size) and device is not None:
                try:
                    duration = (
                        device.op_time_us(
                            flops, size, node_dtype, gemm_shape=shape, comm_sms=comm_sms
                        )
                        * 1000.0
                    )
                except ModelsError as exc:
                    raise WorkloadError(
                        f"rank {rank}: node {node.id} ({node.name}): {exc}"
                    ) from None
            else:
                duration = 0.0
            durations[i] = duration if duration > min_op_ns else min_op_ns
        elif node_type == _COLL:
            kinds[i] = K_COLL
            durations[i] = node.duration_micros * 1000.0  # measured; used only when replaying
            # One pass over the attributes (each protobuf access costs ~0.5 us).
            found = {a.name: a for a in node.attr if a.name in _COLL_ATTRS}
            values = {name: attr_value(a) for name, a in found.items()}
            comm_type = values.get("comm_type")
            if (
                not isinstance(comm_type, int)
                or isinstance(comm_type, bool)
                or comm_type not in COLLECTIVE_OPS
            ):
                raise WorkloadError(
                    f"rank {rank}: node {node.id} ({node.name}): comm_type {comm_type!r} is not a "
                    "Chakra collective type"
                )
            comm_size = values.get("comm_size", 0)
            if not isinstance(comm_size, int) or isinstance(comm_size, bool):
                raise WorkloadError(
                    f"rank {rank}: node {node.id} ({node.name}): comm_size must be an integer, "
                    f"got {comm_size!r}"
                )
            pg = values.get("pg_name", "")
            program.collectives[i] = (COLLECTIVE_OPS[comm_type], comm_size, str(pg))
            stream = values.get("stream")
            if isinstance(stream, str):
                program.streams[i] = stream
        elif node_type in (_SEND, _RECV):
            send = node_type == _SEND
            kinds[i] = K_SEND if send else K_RECV
            durations[i] = node.duration_micros * 1000.0  # measured; used only when replaying
            peer_field = "comm_dst" if send else "comm_src"
            peer_rank, tag_value, size_bytes = _assume_p2p(
                rank,
                node,
                world_size,
                _int(node, peer_field),
                _int(node, "comm_tag"),
                _int(node, "comm_size"),
                notes,
            )
            src, dst = (rank, peer_rank) if send else (peer_rank, rank)
            program.p2p[i] = (src, dst, tag_value, size_bytes)
            p2p_stream = chakra_et.get_attr(node, "stream")
            if isinstance(p2p_stream, str) and p2p_stream:
                program.p2p_streams[i] = p2p_stream
        elif node_type in _MEM:
            kinds[i] = K_MEM
            mem_bytes = _int(node, "tensor_size", None) or _int(node, "comm_size", 0) or 0
            durations[i] = mem_bytes / memory_bandwidth_gbps  # bytes / (GB/s) = ns
    for i, (node_ids, sms) in program.beside.items():
        resolved: list[int] = []
        for node_id in node_ids:
            j = index_get(node_id)
            if j is None or j not in program.collectives:
                raise WorkloadError(
                    f"rank {rank}: node {ids[i]} ({program.names[i]}): {COMM_BESIDE_ATTR} "
                    f"names node {node_id}, which is not a collective of this rank"
                )
            resolved.append(j)
        program.beside[i] = (tuple(resolved), sms)
    return program


def stretch_beside(
    program: Program, device: DeviceSpec, collective_ns: Callable[[int], float]
) -> None:
    """Stretch the compute nodes that run beside an SM-holding collective, in place.

    While the collectives beside it run (one after another on their stream: ``c``, the sum
    of ``collective_ns(j)``, their uncontended times), the node computes on ``num_sms - k`` of
    the device's SMs; after, on all of them. A node of ``d`` ns alone takes
    ``min(d N / (N - k), d + c k / N)``: the first when it ends before they do.
    """
    total = device.num_sms
    if total is None:
        return
    for i, (collectives, held) in program.beside.items():
        if held >= total:
            raise WorkloadError(
                f"rank {program.rank}: node {program.ids[i]} ({program.names[i]}): "
                f"{COMM_SMS_ATTR}={held} leaves no SM of device {device.name} "
                f"(num_sms={total}) to compute on"
            )
        alone = program.duration_ns[i]
        beside = sum(collective_ns(j) for j in collectives)
        program.duration_ns[i] = min(alone * total / (total - held), alone + beside * held / total)
