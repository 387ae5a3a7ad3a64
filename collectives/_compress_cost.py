"""Performance transform of gradient compression for one data-parallel gradient collective.

The engine calls :func:`compressed_sync_time_us` in place of ``collective_time_us`` for the
gradient collectives of data-parallel streams (``dp``, ``dp_cp``, ``edp``). With ``D`` the
dense bytes, ``CR`` the spec's ratio and ``n`` learners:

* **AdaComp** sends ``s = D / CR`` bytes per learner (values and indices). Each learner picks
  its own indices, so sparse payloads cannot be summed along a ring: an all-reduce becomes an
  **all-gather** of the ``n`` payloads (``(n-1)·s`` received: the gradient build-up), a
  reduce-scatter an **all-to-all** of them (each owner gets the entries of its shard).
* **ScaleCom** sends ``k = D / (CR · dense_value_bytes)`` values at indices the leader chose:
  an **index broadcast** of ``k · index_bytes`` (bandwidth-optimal, a scatter then an
  all-gather, costed as a reduce-scatter of the buffer plus an all-gather of its shards) and a
  dense **all-reduce** (or reduce-scatter) of ``k · value_bytes``, constant per learner in ``n``.
* The compressor's own work is ``passes`` memory-bound passes over ``D`` at the memory
  bandwidth, plus, for AdaComp, decoding what it received: a scatter-add that reads each
  payload byte and reads and writes the dense element (taken as three passes over the
  received bytes).
* With ``dense_fallback`` a sync that would not beat the dense collective runs dense.

Other operations (the parameter all-gathers of ZeRO, anything not a gradient reduction) cost
what the dense collective costs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from trainsim.topology import Topology

from ._api import collective_time_us
from ._compress_spec import CompressionSpec
from ._cost import CostModel
from ._errors import AlgorithmError
from ._ops import CollectiveOp
from ._system import SystemConfig

__all__ = [
    "CompressedSync",
    "compressed_sync_cost",
    "compressed_sync_time_us",
    "compression_overhead_us",
]

#: Operations that reduce gradients, the only ones compression applies to.
GRADIENT_OPS = (CollectiveOp.ALL_REDUCE, CollectiveOp.REDUCE_SCATTER)

#: Passes over the received bytes of AdaComp's decode (read payload, read and write dense).
DECODE_PASSES = 3.0


@dataclass(frozen=True)
class CompressedSync:
    """Predicted cost of one compressed gradient sync and of the dense collective it replaces.

    ``mode`` is ``compressed``, ``dense_fallback`` (compression would not have paid) or
    ``dense`` (the operation is not a gradient reduction, or the group has one member).
    ``phases`` lists the compressed collectives as ``(op, size_bytes, time_us)``.
    """

    method: str
    op: str
    size_bytes: float
    group_size: int
    ratio: float
    payload_bytes: float
    received_bytes: float
    comm_time_us: float
    overhead_us: float
    dense_time_us: float
    mode: str
    phases: tuple[tuple[str, float, float], ...] = ()

    @property
    def compressed_time_us(self) -> float:
        """Time of the compressed sync: its collectives plus the compressor's work."""
        return self.comm_time_us + self.overhead_us

    @property
    def time_us(self) -> float:
        """Time the sync takes: the compressed one, or the dense one where that was used."""
        return self.compressed_time_us if self.mode == "compressed" else self.dense_time_us

    @property
    def speedup(self) -> float:
        """Dense time over the time taken."""
        return self.dense_time_us / self.time_us if self.time_us > 0 else 1.0

    def to_dict(self) -> dict[str, object]:
        """Plain-data form for JSON output."""
        return {
            "method": self.method,
            "op": self.op,
            "size_bytes": self.size_bytes,
            "group_size": self.group_size,
            "ratio": self.ratio,
            "payload_bytes": self.payload_bytes,
            "received_bytes": self.received_bytes,
            "comm_time_us": self.comm_time_us,
            "overhead_us": self.overhead_us,
            "compressed_time_us": self.compressed_time_us,
            "dense_time_us": self.dense_time_us,
            "time_us": self.time_us,
            "mode": self.mode,
            "phases": [list(p) for p in self.phases],
        }


def compression_overhead_us(
    spec: CompressionSpec,
    size_bytes: float,
    received_bytes: float = 0.0,
    memory_bandwidth_gbps: float | None = None,
) -> float:
    """Compressor work in microseconds: memory-bound passes over the gradient, plus decoding.

    ``memory_bandwidth_gbps`` (GB/s, 1e9 B/s) overrides the spec's; with neither the work is
    free. ``received_bytes`` is what AdaComp decodes (zero for ScaleCom, whose values arrive
    already summed).
    """
    bandwidth = memory_bandwidth_gbps or spec.memory_bandwidth_gbps
    if bandwidth is None:
        return spec.launch_overhead_us
    moved = spec.effective_passes * size_bytes + DECODE_PASSES * received_bytes
    return spec.launch_overhead_us + moved / (bandwidth * 1e3)


def compressed_sync_cost(
    compression: CompressionSpec,
    size_bytes: float,
    group_ranks: Sequence[int],
    topology: Topology,
    algorithm: str | Sequence[str] | None = None,
    model: str | CostModel = "analytical",
    system: SystemConfig | None = None,
    *,
    op: CollectiveOp | str = CollectiveOp.ALL_REDUCE,
    layer_type: str | None = None,
    memory_bandwidth_gbps: float | None = None,
) -> CompressedSync:
    """Cost one data-parallel gradient collective of ``size_bytes`` under ``compression``.

    Arguments after ``compression`` are those of ``collective_time_us``; ``op`` is the dense
    collective (``all_reduce`` or ``reduce_scatter``), ``layer_type`` picks a per-layer-type
    ratio, ``memory_bandwidth_gbps`` is the device's HBM bandwidth for the compressor's work.

    >>> from trainsim.topology import parse_spec
    >>> spec = CompressionSpec(method="scalecom", ratio=100)
    >>> c = compressed_sync_cost(spec, 100e6, range(8), parse_spec("switch:8@12.5/1"))
    >>> c.mode, round(c.dense_time_us), round(c.time_us)
    ('compressed', 14028, 336)
    """
    operation = CollectiveOp.parse(op)
    ranks = tuple(group_ranks)
    n = len(ranks)
    ratio = compression.ratio_for(layer_type)

    def cost(kind: CollectiveOp, nbytes: float) -> float:
        try:
            return collective_time_us(kind, nbytes, ranks, topology, algorithm, model, system)
        except AlgorithmError:
            # An algorithm chosen for the dense all-reduce (a tree, say) may not implement
            # the collective compression turns it into; that one takes the default.
            return collective_time_us(kind, nbytes, ranks, topology, None, model, system)

    dense = cost(operation, size_bytes) if n > 1 else 0.0
    if n <= 1 or operation not in GRADIENT_OPS or size_bytes <= 0:
        return CompressedSync(
            compression.method,
            operation.value,
            size_bytes,
            n,
            ratio,
            size_bytes,
            0.0,
            dense,
            0.0,
            dense,
            "dense",
        )
    phases: list[tuple[str, float, float]] = []
    if compression.method == "adacomp":
        payload = size_bytes / ratio
        if operation is CollectiveOp.ALL_REDUCE:
            kind, received = CollectiveOp.ALL_GATHER, (n - 1) * payload
        else:
            kind, received = CollectiveOp.ALL_TO_ALL, (n - 1) / n * payload
        phases.append((kind.value, payload, cost(kind, payload)))
    else:
        k = size_bytes / (compression.dense_value_bytes * ratio)
        index_bytes = k * compression.index_bytes
        value_bytes = k * compression.value_bytes
        payload = value_bytes + index_bytes
        received = 0.0
        scatter = cost(CollectiveOp.REDUCE_SCATTER, index_bytes)
        gather = cost(CollectiveOp.ALL_GATHER, index_bytes / n)
        phases.append(("broadcast", index_bytes, scatter + gather))
        phases.append((operation.value, value_bytes, cost(operation, value_bytes)))
    comm = sum(p[2] for p in phases)
    overhead = compression_overhead_us(compression, size_bytes, received, memory_bandwidth_gbps)
    compressed = comm + overhead
    mode = "dense_fallback" if compression.dense_fallback and compressed >= dense else "compressed"
    return CompressedSync(
        compression.method,
        operation.value,
        size_bytes,
        n,
        ratio,
        payload,
        received,
        comm,
        overhead,
        dense,
        mode,
        tuple(phases),
    )


def compressed_sync_time_us(
    compression: CompressionSpec,
    size_bytes: float,
    group_ranks: Sequence[int],
    topology: Topology,
    algorithm: str | Sequence[str] | None = None,
    model: str | CostModel = "analytical",
    system: SystemConfig | None = None,
    *,
    op: CollectiveOp | str = CollectiveOp.ALL_REDUCE,
    layer_type: str | None = None,
    memory_bandwidth_gbps: float | None = None,
) -> float:
    """Time in microseconds of one compressed gradient sync (see ``compressed_sync_cost``)."""
    return compressed_sync_cost(
        compression,
        size_bytes,
        group_ranks,
        topology,
        algorithm,
        model,
        system,
        op=op,
        layer_type=layer_type,
        memory_bandwidth_gbps=memory_bandwidth_gbps,
    ).time_us
