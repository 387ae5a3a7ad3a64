"""``ETBuilder``: numbers one rank's nodes in issue order and encodes their attributes once.

Generation repeats a few thousand distinct attributes many times, so each is serialized once and
nodes are assembled from wire bytes. The builder also owns the process-group ids of the rank's
collectives and the one-node lag that models overlapped tensor-parallel communication.
"""

from __future__ import annotations

from collections.abc import Sequence

from trainsim.chakra_et import Node, NodeType, make_attr
from trainsim.models._device import DeviceSpec
from trainsim.models._plan import ParallelPlan
from trainsim.models._ranks import RankLayout
from trainsim.models._roofline import (
    COMM_BESIDE_ATTR,
    COMM_SMS_ATTR,
    ROOFLINE_ATTR,
    roofline_time_us,
)
from trainsim.models._spec import ModelSpec

__all__ = ["COMP", "ETBuilder"]

COMP = int(NodeType.COMP_NODE)
_COLL = int(NodeType.COMM_COLL_NODE)
_SEND = int(NodeType.COMM_SEND_NODE)
_RECV = int(NodeType.COMM_RECV_NODE)


def _attr_blob(name: str, value: object) -> bytes:
    """Wire bytes of one ``attr`` entry of a Node."""
    return Node(attr=[make_attr(name, value)]).SerializeToString()


#: Generation repeats a few thousand distinct attributes many times: encode each once.
_BLOBS: dict[tuple[str, object, type], bytes] = {}


def _varint(n: int) -> bytes:
    """Protobuf base-128 varint of a non-negative integer."""
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _length_delimited(tag: int, payload: bytes) -> bytes:
    return bytes((tag,)) + _varint(len(payload)) + payload


#: ``Node.attr`` and ``AttributeProto.int64_list`` are field 10, ``name`` and ``values`` 1,
#: all length-delimited (wire type 2).
_FIELD_10, _FIELD_1 = (10 << 3) | 2, (1 << 3) | 2


def _id_list_blob(name: str, ids: tuple[int, ...]) -> bytes:
    """``_attr_blob(name, ids)`` written directly: these values name nodes, new in every
    workload, so they are neither cached (``_BLOBS`` would grow with every plan) nor built
    through protobuf objects (several times slower)."""
    values = _length_delimited(_FIELD_1, b"".join(_varint(i) for i in ids))
    attr = _length_delimited(_FIELD_1, name.encode()) + _length_delimited(_FIELD_10, values)
    return _length_delimited(_FIELD_10, attr)


def _encode(attrs: dict[str, object]) -> bytes:
    """Wire bytes of a Node holding ``is_cpu_op = false`` and ``attrs``."""
    parts = [_IS_GPU_OP]
    for key, value in attrs.items():
        if key == COMM_BESIDE_ATTR and isinstance(value, tuple):
            parts.append(_id_list_blob(key, value))
            continue
        cache_key = (key, value, value.__class__)  # keeps 1 and True apart
        blob = _BLOBS.get(cache_key)
        if blob is None:
            blob = _BLOBS[cache_key] = _attr_blob(key, value)
        parts.append(blob)
    return b"".join(parts)


# ASTRA-sim reads ``is_cpu_op`` on every node; every generated node runs on the GPU.
_IS_GPU_OP = _attr_blob("is_cpu_op", False)


class ETBuilder:
    """Accumulates the nodes of one rank's graph, numbering them in issue order."""

    def __init__(
        self,
        model: ModelSpec,
        plan: ParallelPlan,
        layout: RankLayout,
        rank: int,
        gran: str,
        device: DeviceSpec | None,
    ) -> None:
        self.model, self.plan, self.layout, self.rank, self.gran = model, plan, layout, rank, gran
        self.device = device
        self.coord = layout.coord(rank)
        self.nodes: list[Node] = []
        self.groups: dict[int, str] = {}
        self._pg_cache: dict[str, str | None] = {}
        self._coll_cache: dict[tuple[int, int, str], bytes] = {}
        # With TP communication overlap a TP collective runs beside the next compute node and
        # the one after waits for it; sends and the optimizer wait for everything outstanding.
        self.overlap_tp = plan.overlap_tp_comm
        self._tp_new: list[int] = []
        self._tp_due: list[int] = []
        self._next_waits: list[int] = []  # nodes the next compute node waits for
        self._blocking: list[int] = []  # nodes everything issued before it waits for

    def wait_before_next_compute(self, ids: Sequence[int]) -> None:
        """Make the next compute node also wait for ``ids`` (e.g. a blocking send)."""
        self._next_waits.extend(i for i in ids if i >= 0)

    def block_until_next_compute(self, ids: Sequence[int]) -> None:
        """Make every node issued from now to the next compute node (that one included) wait
        for ``ids``: a blocking exchange holds the host, so nothing else starts before it ends
        (receives excepted, which the same batched exchange posts)."""
        self._blocking.extend(i for i in ids if i >= 0)

    def drain_tp(self) -> list[int]:
        """TP collectives still outstanding (and forget them): what a sync point waits for."""
        out = self._tp_due + self._tp_new
        self._tp_due, self._tp_new = [], []
        return out

    def drain_waits(self) -> list[int]:
        """What the next compute node would have waited for (and forget it)."""
        out = self._next_waits + self._blocking
        self._next_waits, self._blocking = [], []
        return out

    def _add(
        self,
        name: str,
        node_type: int,
        attrs: dict[str, object],
        data_deps: Sequence[int] = (),
    ) -> int:
        return self._add_encoded(name, node_type, _encode(attrs), data_deps)

    def _add_encoded(
        self,
        name: str,
        node_type: int,
        attr_bytes: bytes,
        data_deps: Sequence[int],
        duration_micros: int = 0,
    ) -> int:
        nid = len(self.nodes)
        # Parsing cached wire bytes is several times faster than building attributes in Python.
        node = Node.FromString(attr_bytes)
        node.id = nid
        node.name = name
        node.type = node_type  # type: ignore[assignment]
        if duration_micros:
            node.duration_micros = duration_micros
        node.data_deps.extend([d for d in data_deps if d >= 0])
        self.nodes.append(node)
        return nid

    def comp(self, name: str, flops: int, size: int, prev: int, attrs: dict[str, object]) -> int:
        full: dict[str, object] = {
            "num_ops": flops,
            "tensor_size": size,
            "stream": "compute",
            **attrs,
        }
        due = self._tp_due + self._next_waits + self._blocking
        self._tp_due, self._tp_new, self._next_waits = self._tp_new, [], []
        self._blocking = []
        duration = 0
        if self.device is not None:
            shape = attrs.get("gemm_shape")
            roofline = attrs.get(ROOFLINE_ATTR)
            # A margin that lasts only while a collective runs is the engine's to apply.
            held = 0 if COMM_BESIDE_ATTR in attrs else attrs.get(COMM_SMS_ATTR, 0)
            comm_sms = held if isinstance(held, int) else 0
            if isinstance(roofline, tuple):
                time_us = roofline_time_us(
                    self.device, roofline, self.plan.dtype, comm_sms=comm_sms
                )
            else:
                time_us = self.device.op_time_us(
                    flops,
                    size,
                    self.plan.dtype,
                    gemm_shape=shape if isinstance(shape, tuple) else None,
                    comm_sms=comm_sms,
                )
            duration = max(1, round(time_us)) if flops or size else 0
        return self._add_encoded(name, COMP, _encode(full), (prev, *due), duration)

    def pg(self, kind: str) -> str | None:
        """pg_name of this rank's ``kind`` group, or None when the group is a single rank."""
        if kind not in self._pg_cache:
            if self.layout.group_size(kind) == 1:
                self._pg_cache[kind] = None
            else:
                pg_id = self.layout.pg_id(kind, self.rank)
                self.groups[pg_id] = kind
                self._pg_cache[kind] = str(pg_id)
        return self._pg_cache[kind]

    def coll(
        self,
        name: str,
        kind: str,
        comm_type: int,
        size: int,
        deps: Sequence[int],
        *,
        overlap: bool = True,
        beside_next: bool = False,
    ) -> int:
        """Add a collective after ``deps``; return its id, or the last dep when it is a no-op.

        With TP overlap a TP collective runs beside the next compute node and returns the last
        dep; ``overlap=False`` leaves it to the caller (it returns the collective's id).
        ``beside_next`` puts any collective beside the next compute node that way and returns
        its id.
        """
        pg = self.pg(kind) if size > 0 else None
        if pg is None:
            return deps[-1] if deps else -1
        key = (comm_type, size, pg)
        encoded = self._coll_cache.get(key)
        if encoded is None:
            attrs: dict[str, object] = {
                "comm_type": comm_type,
                "comm_size": size,
                "pg_name": pg,
                "stream": kind,
            }
            encoded = self._coll_cache[key] = _encode(attrs)
        nid = self._add_encoded(name, _COLL, encoded, (*deps, *self._blocking))
        if deps and (beside_next or (overlap and self.overlap_tp and kind == "tp")):
            self._tp_new.append(nid)
            return nid if beside_next else deps[-1]
        return nid

    def p2p(
        self,
        name: str,
        send: bool,
        peer: int,
        size: int,
        tag: int,
        after: int,
        extra_deps: Sequence[int] = (),
    ) -> int:
        """A send to or receive from ``peer`` after ``after`` (a send also after ``extra_deps``
        and the outstanding TP collectives)."""
        src, dst = (self.rank, peer) if send else (peer, self.rank)
        attrs: dict[str, object] = {
            "comm_src": src,
            "comm_dst": dst,
            "comm_size": size,
            "comm_tag": tag,
            "stream": "pp",
        }
        node_type = _SEND if send else _RECV
        if send:
            deps = (after, *extra_deps, *self._blocking, *self.drain_tp())
            return self._add(name, node_type, attrs, data_deps=deps)
        # A receive is posted once the previous compute is done (ASTRA-sim's own pipeline
        # example does the same, as a data dependency: its feeder follows data_deps).
        return self._add(name, node_type, attrs, data_deps=(after,))
