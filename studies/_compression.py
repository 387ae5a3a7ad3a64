"""Learners study: time-to-train against data-parallel learners for dense, AdaComp, ScaleCom.

Weak scaling on a bandwidth-limited cluster: every learner runs a fixed local batch, so a
fixed number of training samples takes ``samples / (n * local_batch)`` steps, each costing the
learner's compute plus the gradient sync (not overlapped: the sync follows the backward pass).
The sync is costed by ``collectives``: the dense ring all-reduce, AdaComp's all-gather of sparse
payloads (whose received volume grows with ``n``: the gradient build-up) and ScaleCom's index
broadcast plus all-reduce of ``k`` values (constant per learner). Compression runs without
dense fallback here, to show where AdaComp loses to dense.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from trainsim.collectives import CompressionSpec, compressed_sync_cost
from trainsim.topology import Topology, parse_spec

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "LearnersStudy",
    "adacomp_crossover_closed_form",
    "learners_study",
]

DEFAULT_LEARNERS: tuple[int, ...] = (8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)


@dataclass(frozen=True)
class StudyPoint:
    """One learner count: per-step sync times (us) and time-to-train (hours) per scheme."""

    learners: int
    steps: float
    sync_us: dict[str, float]
    hours: dict[str, float]


@dataclass(frozen=True)
class LearnersStudy:
    """Result of ``learners_study``: the curves and the AdaComp-versus-dense crossover."""

    points: tuple[StudyPoint, ...]
    adacomp_crossover: int | None
    scalecom_crossover: int | None
    settings: dict[str, float | str] = field(default_factory=dict)

    def to_dataframe(self) -> pd.DataFrame:
        """One row per learner count and scheme."""
        import pandas as pd

        rows = [
            {
                "learners": p.learners,
                "scheme": scheme,
                "sync_us": p.sync_us[scheme],
                "steps": p.steps,
                "time_to_train_h": p.hours[scheme],
            }
            for p in self.points
            for scheme in p.hours
        ]
        frame: pd.DataFrame = pd.DataFrame(rows)
        return frame

    def plot(self, path: str | Path | None = None) -> object:
        """Time-to-train against learners (log-log), crossover marked; saved when ``path``."""
        import matplotlib

        if path is not None:
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        learners = [p.learners for p in self.points]
        for scheme, style in (("dense", "k-o"), ("adacomp", "C1-s"), ("scalecom", "C0-^")):
            ax.plot(learners, [p.hours[scheme] for p in self.points], style, label=scheme)
        if self.adacomp_crossover is not None:
            ax.axvline(self.adacomp_crossover, color="C1", ls=":", lw=1)
            ax.annotate(
                f"AdaComp loses to dense\nfrom {self.adacomp_crossover} learners",
                (self.adacomp_crossover, ax.get_ylim()[1]),
                textcoords="offset points",
                xytext=(4, -28),
                fontsize=8,
                color="C1",
            )
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("data-parallel learners")
        ax.set_ylabel("time to train (hours)")
        ax.set_title(str(self.settings.get("title", "gradient compression vs learners")))
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        if path is not None:
            fig.savefig(path, dpi=120)
            plt.close(fig)
        return fig


def learners_study(
    learners: Sequence[int] = DEFAULT_LEARNERS,
    *,
    gradient_bytes: float = 4 * 350e6,
    compute_us_per_step: float = 250_000.0,
    samples: float = 1e9,
    local_batch: int = 32,
    network: Callable[[int], Topology] | str = "switch:{n}@12.5/1",
    adacomp: CompressionSpec | None = None,
    scalecom: CompressionSpec | None = None,
    memory_bandwidth_gbps: float = 2000.0,
    find_crossover: bool = True,
) -> LearnersStudy:
    """Run the study; ``network`` builds the ``n``-learner cluster (a spec with ``{n}``).

    Defaults: a 350M-parameter model (BERT-large class) with fp32 gradients synchronized as
    one bucket, 250 ms of compute per step, one 12.5 GB/s (100 Gb/s) link per learner into a
    switch with 1 us links, HBM at 2 TB/s for the compressor's work, both methods at 100x.
    The crossover is the smallest learner count at which AdaComp's sync is slower than dense,
    found by bisection on the cost model between the swept counts.
    """
    ada = adacomp or CompressionSpec(method="adacomp", ratio=100.0, dense_fallback=False)
    scl = scalecom or CompressionSpec(method="scalecom", ratio=100.0, dense_fallback=False)
    build = _builder(network)

    def syncs(n: int) -> dict[str, float]:
        topo = build(n)
        out: dict[str, float] = {}
        for name, spec in (("adacomp", ada), ("scalecom", scl)):
            cost = compressed_sync_cost(
                spec, gradient_bytes, range(n), topo, memory_bandwidth_gbps=memory_bandwidth_gbps
            )
            out["dense"] = cost.dense_time_us
            out[name] = cost.compressed_time_us
        return out

    points = []
    cache: dict[int, dict[str, float]] = {}
    for n in learners:
        sync = cache.setdefault(n, syncs(n))
        steps = samples / (n * local_batch)
        hours = {k: steps * (compute_us_per_step + v) / 3.6e9 for k, v in sync.items()}
        points.append(StudyPoint(n, steps, sync, hours))

    def loses(scheme: str) -> Callable[[int], bool]:
        def test(n: int) -> bool:
            sync = cache.setdefault(n, syncs(n))
            return sync[scheme] > sync["dense"]

        return test

    swept = sorted(set(learners))
    crossovers = {
        s: (_first_true(swept, loses(s)) if find_crossover else None)
        for s in ("adacomp", "scalecom")
    }
    settings: dict[str, float | str] = {
        "gradient_bytes": gradient_bytes,
        "compute_us_per_step": compute_us_per_step,
        "samples": samples,
        "local_batch": local_batch,
        "adacomp_ratio": ada.ratio_for(),
        "scalecom_ratio": scl.ratio_for(),
        "memory_bandwidth_gbps": memory_bandwidth_gbps,
        "title": (
            f"{gradient_bytes / 4e6:.0f}M params, "
            f"{network if isinstance(network, str) else 'custom network'}"
        ),
    }
    return LearnersStudy(tuple(points), crossovers["adacomp"], crossovers["scalecom"], settings)


def adacomp_crossover_closed_form(
    gradient_bytes: float,
    ratio: float,
    bandwidth_gbps: float,
    step_latency_us: float,
    *,
    passes: float = 5.0,
    memory_bandwidth_gbps: float | None = None,
    decode_passes: float = 3.0,
) -> float:
    """Learner count above which AdaComp's all-gather sync is slower than a dense ring all-reduce.

    With ``D`` bytes, ``s = D / CR``, per-step latency ``a`` and bandwidth ``B`` (ring on a
    switch: ``a`` is two link latencies), memory bandwidth ``W`` and ``c0 = passes * D / W``:
    dense ``2(n-1)a + 2(n-1)/n * D/B``; AdaComp ``(n-1)(a + s/B) + c0 + decode*(n-1)s/W``.
    Equal when ``A n^2 + (c0 - A - 2D/B) n + 2D/B = 0`` with ``A = s/B + decode*s/W - a``;
    the larger root is returned (``inf`` when AdaComp never loses).

    >>> round(adacomp_crossover_closed_form(1e9, 100, 12.5, 2.0), 1)
    200.5
    """
    b = bandwidth_gbps * 1e3  # bytes per us
    s = gradient_bytes / ratio
    w = memory_bandwidth_gbps * 1e3 if memory_bandwidth_gbps else math.inf
    c0 = passes * gradient_bytes / w
    a_coef = s / b + decode_passes * s / w - step_latency_us
    dense_bw = 2.0 * gradient_bytes / b
    b_coef = c0 - a_coef - dense_bw
    if a_coef <= 0:
        return math.inf
    disc = b_coef * b_coef - 4.0 * a_coef * dense_bw
    if disc < 0:
        return math.inf
    return (-b_coef + math.sqrt(disc)) / (2.0 * a_coef)


def _builder(network: Callable[[int], Topology] | str) -> Callable[[int], Topology]:
    if isinstance(network, str):
        spec = network
        return lambda n: parse_spec(spec.format(n=n))
    return network


def _first_true(swept: Sequence[int], test: Callable[[int], bool]) -> int | None:
    """Smallest ``n`` with ``test(n)``, assuming it stays true once true (bisection)."""
    previous = None
    for n in swept:
        if test(n):
            lo = previous if previous is not None else n
            hi = n
            if lo == hi:
                return n
            while hi - lo > 1:  # test(lo) False, test(hi) True
                mid = (lo + hi) // 2
                if test(mid):
                    hi = mid
                else:
                    lo = mid
            return hi
        previous = n
    return None
