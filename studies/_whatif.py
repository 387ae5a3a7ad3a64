"""What-ifs that vary one thing about the machine and report what it changes for one plan.

``topology_whatif`` varies one figure of the cluster (scale-out or in-node bandwidth or
latency, GPUs per node) or swaps the cluster preset; ``compression_whatif`` compares gradient
compression methods and ratios. Each predicts one step per variant with everything else held,
and reports the step time and its speedup over the first variant (the baseline).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from trainsim.collectives import CompressionSpec
from trainsim.engine import (
    CLUSTER_PRESETS,
    ClusterPreset,
    System,
    cluster_device,
    cluster_system,
    default_cluster,
    predict,
)
from trainsim.models import ModelSpec, ParallelPlan, check_plan, load_model
from trainsim.studies._sweep_space import SweepConfigError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "TOPOLOGY_KNOBS",
    "WhatIfResult",
    "WhatIfRow",
    "compression_whatif",
    "topology_whatif",
]

TopologyKnob = Literal[
    "scale_out_bandwidth_gbps",
    "intra_bandwidth_gbps",
    "scale_out_latency_us",
    "intra_latency_us",
    "gpus_per_node",
    "cluster",
]
#: Cluster figures a topology what-if can vary (``cluster`` swaps the whole preset).
TOPOLOGY_KNOBS: tuple[str, ...] = TopologyKnob.__args__  # type: ignore[attr-defined]


@dataclass
class WhatIfRow:
    """One variant: its label and the step it predicts."""

    value: str
    step_time_s: float
    tokens_per_s: float | None
    mfu: float | None
    exposed_comm_s: float
    speedup: float = 1.0


@dataclass
class WhatIfResult:
    """The variants of one what-if, the first being the baseline the speedups are over."""

    parameter: str
    model: str
    plan: dict[str, Any]
    gpus: int
    device: str
    rows: list[WhatIfRow] = field(default_factory=list)

    def to_dataframe(self) -> pd.DataFrame:
        """One row per variant."""
        import pandas as pd

        frame: pd.DataFrame = pd.DataFrame([dataclasses.asdict(r) for r in self.rows])
        return frame

    def summary(self) -> dict[str, Any]:
        """Plain data (what ``--json`` prints)."""
        return {
            "parameter": self.parameter,
            "model": self.model,
            "gpus": self.gpus,
            "device": self.device,
            "plan": self.plan,
            "baseline": self.rows[0].value if self.rows else None,
            "rows": [dataclasses.asdict(r) for r in self.rows],
        }

    def format(self) -> str:
        """A plain-text table of the variants and their speedups."""
        where = (
            f"{self.gpus} GPUs, each cluster with its own device (in brackets)"
            if self.parameter == "cluster"
            else f"{self.gpus} {self.device}"
        )
        lines = [
            f"what-if {self.parameter}: {self.model} on {where}",
            f"{self.parameter:<28} {'step s':>10} {'tok/s':>11} {'MFU':>6} {'exp. comm s':>11} "
            f"{'speedup':>8}",
        ]
        for r in self.rows:
            lines.append(
                f"{r.value:<28} {r.step_time_s:>10.4g} {(r.tokens_per_s or 0.0):>11.4g} "
                f"{(r.mfu or 0.0):>6.1%} {r.exposed_comm_s:>11.4g} {r.speedup:>7.3f}x"
            )
        return "\n".join(lines)


def _cluster(base: System, gpus: int, preset: ClusterPreset) -> System:
    """``base`` (a built-in cluster's system) on a preset whose figures may differ."""
    topo = preset.topology(gpus)
    # Every other setting (cost model, collectives, scheduling) stays the built-in system's.
    fields = base.model_dump(exclude={"name", "network"})
    return System.with_topology(topo, name=f"{preset.name} ({gpus} GPUs)", **fields)


def _cost(cost_model: str | None) -> dict[str, Any]:
    """``cost_model`` as a ``System`` field; None keeps ``cluster_system``'s default."""
    return {} if cost_model is None else {"cost_model": cost_model}


def _row(value: str, model: ModelSpec, plan: ParallelPlan, system: System) -> WhatIfRow:
    result = predict(model, plan, system)
    exposed = result.summary().get("exposed_comm_s_mean", {})
    return WhatIfRow(
        value=value,
        step_time_s=result.step_time_s,
        tokens_per_s=result.tokens_per_s,
        mfu=result.mfu,
        exposed_comm_s=float(sum(exposed.values())),
    )


def _finish(result: WhatIfResult) -> WhatIfResult:
    if result.rows:
        base = result.rows[0].step_time_s
        for row in result.rows:
            row.speedup = base / row.step_time_s if row.step_time_s else float("nan")
    return result


def topology_whatif(
    model: ModelSpec | str,
    plan: ParallelPlan,
    *,
    device: str = "h100-sxm",
    vary: TopologyKnob = "scale_out_bandwidth_gbps",
    values: Sequence[float | str],
    cluster: str | None = None,
    cost_model: str | None = None,
) -> WhatIfResult:
    """Predict ``plan`` on the cluster with one figure set to each of ``values`` in turn.

    ``vary`` names a ``ClusterPreset`` figure (``scale_out_bandwidth_gbps``...) or
    ``cluster`` (``values`` are preset names). The first value is the baseline.
    """
    spec = model if isinstance(model, ModelSpec) else load_model(model)
    check_plan(spec, plan)
    if vary not in TOPOLOGY_KNOBS:
        raise SweepConfigError(f"vary={vary!r} is not one of: {', '.join(TOPOLOGY_KNOBS)}")
    if not values:
        raise SweepConfigError("values: give at least one value to try")
    gpus = plan.num_gpus
    result = WhatIfResult(vary, spec.name, plan.model_dump(mode="json"), gpus, device)
    if vary == "cluster":
        # A cluster preset is a node design with its own GPU: hgx-h200 runs H200s.
        for value in values:
            runs = cluster_device(str(value), device)
            system = cluster_system(runs, gpus, cluster=str(value), **_cost(cost_model))
            result.rows.append(_row(f"{value} ({system.device_spec.name})", spec, plan, system))
        return _finish(result)
    name = cluster or default_cluster(device)
    if name not in CLUSTER_PRESETS:
        allowed = ", ".join(sorted(CLUSTER_PRESETS))
        raise SweepConfigError(f"cluster={name!r} is not a preset (allowed: {allowed})")
    preset = CLUSTER_PRESETS[name]
    base = cluster_system(device, gpus, cluster=name, **_cost(cost_model))
    for value in values:
        number = float(value)
        if number <= 0:
            raise SweepConfigError(f"values: {vary}={value} must be > 0")
        figure: float | int = int(number) if vary == "gpus_per_node" else number
        change: dict[str, Any] = {vary: figure}
        varied = dataclasses.replace(preset, **change)
        system = _cluster(base, gpus, varied)
        result.rows.append(_row(f"{figure:g}", spec, plan, system))
    return _finish(result)


def compression_whatif(
    model: ModelSpec | str,
    plan: ParallelPlan,
    *,
    device: str = "h100-sxm",
    methods: Sequence[str] = ("none", "adacomp", "scalecom"),
    ratios: Sequence[float] | None = None,
    cluster: str | None = None,
    cost_model: str | None = None,
) -> WhatIfResult:
    """Predict ``plan`` with each gradient compression method (and ratio); ``none`` first.

    ``ratios`` tries every ratio with every method (default: each method's own ratio).
    """
    spec = model if isinstance(model, ModelSpec) else load_model(model)
    check_plan(spec, plan)
    allowed = ("none", "adacomp", "scalecom")
    bad = [m for m in methods if m not in allowed]
    if bad or not methods:
        raise SweepConfigError(f"methods={list(methods)}: each must be one of {allowed}")
    gpus = plan.num_gpus
    result = WhatIfResult("compression", spec.name, plan.model_dump(mode="json"), gpus, device)
    variants: list[tuple[str, CompressionSpec | None]] = [("none", None)]
    for method in methods:
        if method == "none":
            continue
        tried: list[float | None] = list(ratios) if ratios else [None]
        for ratio in tried:
            fields: dict[str, Any] = {"method": method}
            if ratio is not None:
                fields["ratio"] = ratio
            try:
                spec_ = CompressionSpec(**fields)
            except ValueError as exc:
                raise SweepConfigError(f"compression {fields}: {exc}".splitlines()[0]) from None
            label = method if ratio is None else f"{method} x{ratio:g}"
            variants.append((label, spec_))
    for label, compression in variants:
        extra = _cost(cost_model)
        if compression is not None:
            extra["compression"] = compression
        system = cluster_system(device, gpus, cluster=cluster, **extra)
        result.rows.append(_row(label, spec, plan, system))
    return _finish(result)
