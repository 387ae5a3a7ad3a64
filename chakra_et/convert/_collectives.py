"""Which PyTorch ops are communication, of what Chakra kind, and how many bytes they move.

``c10d::*`` ops are what every backend records on the calling thread (gloo, NCCL, MPI); the
backend's own span (``gloo:all_reduce``, ``nccl:all_reduce``) and ``record_param_comms`` are
folded into them. ``comm_size`` follows ASTRA-sim: the per-rank buffer, i.e. the shard for
all-gather and the full input for reduce-scatter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trainsim.chakra_et.convert._host_et import HostOp, iter_tensors
from trainsim.chakra_et.schema import CollectiveCommType

__all__ = [
    "COMM_OPS",
    "CommSpec",
    "backend_comm_spec",
    "backend_family",
    "comm_size_bytes",
    "comm_spec",
    "is_backend_op",
    "p2p_peer_and_tag",
]


@dataclass(frozen=True)
class CommSpec:
    """What one ``c10d`` op is: ``kind`` is "coll", "send" or "recv"; ``size_arg`` the input
    argument whose tensors make ``comm_size``; ``family`` the backend span names it pairs with."""

    kind: str
    comm_type: int
    size_arg: int
    family: str


_AR, _AG, _RS = (
    CollectiveCommType.ALL_REDUCE,
    CollectiveCommType.ALL_GATHER,
    (CollectiveCommType.REDUCE_SCATTER),
)
#: ``c10d`` op name (without namespace) -> spec.
COMM_OPS: dict[str, CommSpec] = {
    "allreduce_": CommSpec("coll", _AR, 0, "all_reduce"),
    "allreduce_coalesced_": CommSpec("coll", _AR, 0, "all_reduce"),
    "allreduce_sparse_": CommSpec("coll", _AR, 0, "all_reduce"),
    "broadcast_": CommSpec("coll", CollectiveCommType.BROADCAST, 0, "broadcast"),
    "reduce_": CommSpec("coll", CollectiveCommType.REDUCE, 0, "reduce"),
    "_allgather_base_": CommSpec("coll", _AG, 1, "all_gather"),
    "allgather_": CommSpec("coll", _AG, 1, "all_gather"),
    "allgather_coalesced_": CommSpec("coll", _AG, 1, "all_gather"),
    "allgather_into_tensor_coalesced_": CommSpec("coll", _AG, 1, "all_gather"),
    "_reduce_scatter_base_": CommSpec("coll", _RS, 1, "reduce_scatter"),
    "reduce_scatter_": CommSpec("coll", _RS, 1, "reduce_scatter"),
    "reduce_scatter_tensor_coalesced_": CommSpec("coll", _RS, 1, "reduce_scatter"),
    "alltoall_base_": CommSpec("coll", CollectiveCommType.ALL_TO_ALL, 1, "all_to_all"),
    "alltoall_": CommSpec("coll", CollectiveCommType.ALL_TO_ALL, 1, "all_to_all"),
    "gather_": CommSpec("coll", CollectiveCommType.GATHER, 1, "gather"),
    "scatter_": CommSpec("coll", CollectiveCommType.SCATTER, 0, "scatter"),
    "barrier": CommSpec("coll", CollectiveCommType.BARRIER, -1, "barrier"),
    "monitored_barrier_": CommSpec("coll", CollectiveCommType.BARRIER, -1, "barrier"),
    "send": CommSpec("send", -1, 0, "send"),
    "recv_": CommSpec("recv", -1, 0, "recv"),
    "recv_any_source_": CommSpec("recv", -1, 0, "recv"),
}

# Backend span families a c10d op may run as (gloo runs reduce-scatter as an all-reduce).
_COMPATIBLE: dict[str, frozenset[str]] = {
    "reduce_scatter": frozenset({"reduce_scatter", "all_reduce"}),
    "all_to_all": frozenset({"all_to_all", "alltoall"}),
    "all_gather": frozenset({"all_gather", "allgather"}),
}


def comm_spec(name: str) -> CommSpec | None:
    """The spec of a ``c10d::`` op name, or None for any other op."""
    if not name.startswith("c10d::"):
        return None
    return COMM_OPS.get(name[len("c10d::") :])


def backend_comm_spec(name: str) -> CommSpec | None:
    """The spec of a backend span (``nccl:all_reduce``, ``nccl:_all_gather_base``) taken as
    the collective itself, where the trace recorded no c10d op for it."""
    if not is_backend_op(name):
        return None
    family = backend_family(name)
    exact = [spec for spec in COMM_OPS.values() if spec.family == family]
    if exact:
        return exact[0]
    return next((spec for spec in COMM_OPS.values() if compatible(spec, f"x:{family}")), None)


def is_backend_op(name: str) -> bool:
    """Whether a span is a backend's view of a collective (``gloo:*``, ``nccl:*``)."""
    return name.startswith(("gloo:", "nccl:", "mpi:", "ucc:")) and not name.startswith(
        "nccl:coalesced"
    )


def backend_family(name: str) -> str:
    """``gloo:all_reduce`` -> ``all_reduce``; ``nccl:_all_gather_base`` -> ``all_gather``
    (the ``_base`` variants are the same collective on one flat tensor)."""
    family = (name.split(":", 1)[1] if ":" in name else name).strip("_")
    return family[: -len("_base")] if family.endswith("_base") else family


def compatible(spec: CommSpec, backend_name: str) -> bool:
    """Whether a backend span can be the execution of a c10d op of this spec."""
    family = backend_family(backend_name)
    return family in _COMPATIBLE.get(spec.family, frozenset({spec.family}))


def comm_size_bytes(op: HostOp, spec: CommSpec) -> int:
    """Bytes of the per-rank buffer of a communication op (0 for a barrier)."""
    if spec.size_arg < 0 or spec.size_arg >= len(op.inputs):
        return 0
    value = op.inputs[spec.size_arg]
    type_str = op.input_types[spec.size_arg] if spec.size_arg < len(op.input_types) else ""
    if type(type_str) is not str or not type_str:
        type_str = "Tensor"  # no type recorded: read whatever tensors the value holds
    return sum(size for _, _, size in iter_tensors(value, type_str))


def p2p_peer_and_tag(op: HostOp, spec: CommSpec) -> tuple[int | None, int]:
    """Peer rank (in the op's group; None for any-source) and tag of a send/recv op."""
    args: list[Any] = op.inputs
    # Ranks and tags are int32 in Chakra; anything else is not a rank or tag.
    ints = [
        v for v in args[2:] if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**31
    ]
    if op.name.endswith("recv_any_source_"):
        return None, ints[0] if ints else 0
    peer = ints[0] if ints else None
    tag = ints[1] if len(ints) > 1 else 0
    return peer, tag
