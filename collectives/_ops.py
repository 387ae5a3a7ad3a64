"""The collective operations and the size conventions every algorithm and cost model share."""

from __future__ import annotations

from enum import Enum

from ._errors import CollectiveError

__all__ = ["CollectiveOp"]


class CollectiveOp(str, Enum):
    """A collective operation.

    ``size_bytes`` always means the per-rank buffer ASTRA-sim calls ``comm_size``: the buffer
    reduced (all-reduce, reduce, reduce-scatter input), the per-rank shard (all-gather and
    gather input, scatter output), the per-rank send buffer (all-to-all), the broadcast buffer
    or the message (send/recv).
    """

    ALL_REDUCE = "all_reduce"
    ALL_GATHER = "all_gather"
    REDUCE_SCATTER = "reduce_scatter"
    ALL_TO_ALL = "all_to_all"
    BROADCAST = "broadcast"
    REDUCE = "reduce"
    GATHER = "gather"
    SCATTER = "scatter"
    BARRIER = "barrier"
    SEND_RECV = "send_recv"

    @classmethod
    def parse(cls, text: str | CollectiveOp) -> CollectiveOp:
        """Read an operation name in any common spelling (``allreduce``, ``ALL_REDUCE``...)."""
        if isinstance(text, CollectiveOp):
            return text
        key = text.strip().lower().replace("-", "").replace("_", "").replace(" ", "")
        for op in cls:
            if op.value.replace("_", "") == key:
                return op
        if key in ("sendrecv", "send", "recv", "p2p"):
            return cls.SEND_RECV
        allowed = ", ".join(op.value for op in cls)
        raise CollectiveError(f"unknown collective {text!r} (allowed: {allowed})")

    def bus_factor(self, n: int) -> float:
        """nccl-tests' ratio of bus bandwidth to algorithm bandwidth for ``n`` ranks."""
        if n <= 1:
            return 1.0
        if self is CollectiveOp.ALL_REDUCE:
            return 2.0 * (n - 1) / n
        if self in (CollectiveOp.ALL_GATHER, CollectiveOp.REDUCE_SCATTER, CollectiveOp.ALL_TO_ALL):
            return (n - 1) / n
        return 1.0

    def algbw_bytes(self, size_bytes: float, n: int) -> float:
        """Bytes nccl-tests divides by the time to get algorithm bandwidth.

        nccl-tests counts the whole output for all-gather (``n`` shards) and the whole input for
        reduce-scatter; elsewhere the buffer itself.
        """
        if self is CollectiveOp.ALL_GATHER:
            return size_bytes * n
        return size_bytes
