"""Empirical kernel variability from measured durations, such as those of a converted trace.

A kernel that runs many times in a trace (the same name, e.g. one GEMM per layer and
micro-batch) shows how its duration spreads. Each repeated kernel's durations are divided by
their mean, and the relative durations of every kernel of a class are pooled into that
class's empirical distribution.
"""

from __future__ import annotations

import numpy as np

from trainsim import chakra_et
from trainsim.chakra_et import NodeType
from trainsim.engine._variability import (
    Distribution,
    ForecastConfigError,
    VariabilitySpec,
    classify_compute,
)
from trainsim.engine._workload import Workload

__all__ = ["variability_from_workload"]

_COMP = int(NodeType.COMP_NODE)


def variability_from_workload(
    workload: Workload, *, min_repeats: int = 3, max_samples: int = 4096
) -> VariabilitySpec:
    """A ``VariabilitySpec`` whose compute classes follow the workload's measured durations.

    Kernels seen fewer than ``min_repeats`` times carry no spread and are skipped; each class
    keeps at most ``max_samples`` relative durations (evenly spaced quantiles of the pool).
    """
    if min_repeats < 2:
        raise ForecastConfigError(f"min_repeats={min_repeats} must be at least 2")
    if max_samples < 2:
        raise ForecastConfigError(f"max_samples={max_samples} must be at least 2")
    by_kernel: dict[tuple[str, str], list[float]] = {}
    for graph in workload.graphs.values():
        for node in graph.node_list:
            if node.type != _COMP or node.duration_micros <= 0:
                continue
            if chakra_et.get_attr(node, "is_cpu_op") is True:
                kernel_class = "cpu"
            else:
                op = chakra_et.get_attr(node, "op")
                shape = chakra_et.get_attr(node, "gemm_shape") is not None
                kernel_class = classify_compute(
                    node.name, op if isinstance(op, str) else None, shape
                )
            by_kernel.setdefault((kernel_class, node.name), []).append(float(node.duration_micros))
    pooled: dict[str, list[float]] = {}
    for (kernel_class, _), durations in by_kernel.items():
        if len(durations) < min_repeats:
            continue
        mean = sum(durations) / len(durations)
        pooled.setdefault(kernel_class, []).extend(d / mean for d in durations)
    if not pooled:
        raise ForecastConfigError(
            f"{workload.name}: no compute kernel with a measured duration repeats "
            f"{min_repeats} times or more"
        )
    kernels: dict[str, Distribution] = {}
    for kernel_class, values in sorted(pooled.items()):
        pool = np.sort(np.asarray(values))
        if pool.size > max_samples:
            pool = np.quantile(pool, (np.arange(max_samples) + 0.5) / max_samples)
        kernels[kernel_class] = Distribution(
            kind="empirical", samples=tuple(float(v) for v in pool)
        )
    return VariabilitySpec(kernels=kernels)
