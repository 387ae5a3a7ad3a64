"""The entry points the engine and the CLI call: one function per question."""

from __future__ import annotations

from collections.abc import Sequence

from trainsim.topology import Topology

from ._algorithms import parse_algorithm
from ._cost import AnalyticalModel, CollectiveCost, CollectiveRequest, CongestionModel, CostModel
from ._errors import ConfigError
from ._hybrid import HybridModel
from ._nccl import NcclModel
from ._ops import CollectiveOp
from ._system import SystemConfig

__all__ = ["MODELS", "collective_cost", "collective_time_us", "get_model"]

#: Names accepted by ``model=``.
MODELS: tuple[str, ...] = ("analytical", "congestion", "nccl", "hybrid")


def get_model(name: str | CostModel) -> CostModel:
    """The cost model called ``name`` (``analytical``, ``congestion``, ``nccl`` or ``hybrid``)."""
    if isinstance(name, CostModel):
        return name
    key = name.strip().lower()
    if key in ("analytical", "alpha_beta", "alphabeta", "unaware"):
        return AnalyticalModel()
    if key in ("congestion", "congestion_aware", "aware"):
        return CongestionModel()
    if key in ("nccl", "busbw"):
        return NcclModel()
    if key == "hybrid":
        return HybridModel()
    raise ConfigError(f"unknown cost model {name!r} (allowed: {', '.join(MODELS)})")


def collective_cost(
    op: CollectiveOp | str,
    size_bytes: float,
    group_ranks: Sequence[int],
    topology: Topology,
    algorithm: str | Sequence[str] | None = None,
    model: str | CostModel = "analytical",
    system: SystemConfig | None = None,
) -> CollectiveCost:
    """Predict one collective and return the full cost record.

    ``algorithm`` is one name or one per spanned dimension; when omitted it comes from
    ``system.algorithms`` (ASTRA-sim's ``*-implementation``) or defaults to ring.

    >>> from trainsim.topology import ring
    >>> c = collective_cost("all_reduce", 1 << 20, range(8), ring(8))
    >>> round(c.time_us, 2)
    43.7
    """
    operation = CollectiveOp.parse(op)
    config = system or SystemConfig()
    if operation is CollectiveOp.SEND_RECV:
        # A point-to-point message goes straight to the network as one message: it is not
        # cut into dataset splits and pays no collective endpoint delay (ASTRA-sim's sim_send
        # charges hops * latency + bytes / bandwidth).
        config = config.model_copy(update={"dataset_splits": 1, "endpoint_delay_ns": 0.0})
    if algorithm is None:
        chosen = config.algorithms.get(operation.value) or config.algorithms.get(
            "all_reduce" if operation is CollectiveOp.BARRIER else "", ("ring",)
        )
        algorithm = chosen
    names: str | tuple[str, ...]
    if isinstance(algorithm, str):
        names = parse_algorithm(algorithm)
    else:
        names = tuple(parse_algorithm(a) for a in algorithm)
        if len(names) == 1:
            names = names[0]
    request = CollectiveRequest(
        operation,
        float(size_bytes),
        (tuple(group_ranks) if isinstance(group_ranks, range) else tuple(map(int, group_ranks))),
        topology,
        names,
        config,
    )
    return get_model(model).estimate(request)


def collective_time_us(
    op: CollectiveOp | str,
    size_bytes: float,
    group_ranks: Sequence[int],
    topology: Topology,
    algorithm: str | Sequence[str] | None = None,
    model: str | CostModel = "analytical",
    system: SystemConfig | None = None,
) -> float:
    """Predicted time of one collective in microseconds (see ``collective_cost``)."""
    return collective_cost(op, size_bytes, group_ranks, topology, algorithm, model, system).time_us
