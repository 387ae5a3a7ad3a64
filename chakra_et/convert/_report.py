"""``ConversionReport``: what went into a conversion and what came out, by kind, and why."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ConversionReport"]


@dataclass
class ConversionReport:
    """Accounting of one host trace (+ Kineto) converted into one Chakra ET.

    Every host node is counted once in ``host_fates``: ``emitted`` (it became an ET node),
    ``folded: <why>`` (its time is inside another ET node), ``container: <why>`` (a thread,
    step or annotation whose children became nodes), ``moved: <why>`` (an ET+ GPU node,
    written as a GPU node) or ``dropped: <why>``. The values sum to
    ``host_nodes_in``. ``et_nodes_by_type`` counts what was written. ``gpu_syncs`` counts
    the blocking runtime calls (stream/device syncs) on host threads and what became of each.
    ``pg_assignment_fits``: how many ways to give gloo worker threads to process groups fit
    the trace (1: certain; None: the trace named its groups or had no worker threads).
    """

    host_source: str
    kineto_source: str | None = None
    schema: str = ""
    rank: int | None = None
    host_nodes_in: int = 0
    host_nodes_by_kind: Counter[str] = field(default_factory=Counter)
    host_fates: Counter[str] = field(default_factory=Counter)
    et_nodes_out: int = 0
    et_nodes_by_type: Counter[str] = field(default_factory=Counter)
    device_events_in: int = 0
    device_fates: Counter[str] = field(default_factory=Counter)
    gpu_syncs: Counter[str] = field(default_factory=Counter)
    kineto_match_ratio: float | None = None
    duration_source: str = "none"
    collectives: list[dict[str, Any]] = field(default_factory=list)
    p2p: list[dict[str, Any]] = field(default_factory=list)
    process_groups: dict[str, list[int]] = field(default_factory=dict)
    pg_assignment_fits: int | None = None
    critical_path_us: int = 0
    measured_step_us: float | None = None
    warnings: list[str] = field(default_factory=list)
    output: str | None = None

    @property
    def replay_error_pct(self) -> float | None:
        """Critical path of the ET against the measured ProfilerStep time, in percent."""
        if not self.measured_step_us:
            return None
        return 100.0 * (self.critical_path_us - self.measured_step_us) / self.measured_step_us

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary of the whole report."""
        error = self.replay_error_pct
        return {
            "host": self.host_source,
            "kineto": self.kineto_source,
            "output": self.output,
            "schema": self.schema,
            "rank": self.rank,
            "host_nodes_in": self.host_nodes_in,
            "host_nodes_by_kind": dict(sorted(self.host_nodes_by_kind.items())),
            "host_fates": dict(sorted(self.host_fates.items())),
            "et_nodes_out": self.et_nodes_out,
            "et_nodes_by_type": dict(sorted(self.et_nodes_by_type.items())),
            "device_events_in": self.device_events_in,
            "device_fates": dict(sorted(self.device_fates.items())),
            "gpu_syncs": dict(sorted(self.gpu_syncs.items())),
            "kineto_match_ratio": self.kineto_match_ratio,
            "duration_source": self.duration_source,
            "collectives": self.collectives,
            "p2p": self.p2p,
            "process_groups": self.process_groups,
            "pg_assignment_fits": self.pg_assignment_fits,
            "replay": {
                "critical_path_us": self.critical_path_us,
                "measured_step_us": self.measured_step_us,
                "error_pct": None if error is None else round(error, 2),
            },
            "warnings": self.warnings,
        }

    def format(self) -> str:
        """A short human-readable summary, as the CLI prints it."""
        lines = [f"{self.host_source}" + (f" + {self.kineto_source}" if self.kineto_source else "")]
        lines.append(
            f"  schema {self.schema}, rank {self.rank}, durations from {self.duration_source}"
        )
        if self.kineto_match_ratio is not None:
            lines.append(f"  host/Kineto match ratio {self.kineto_match_ratio:.3f}")
        lines.append(f"  host nodes in: {self.host_nodes_in}")
        for fate, count in sorted(self.host_fates.items()):
            lines.append(f"    {count:7d}  {fate}")
        if self.device_events_in:
            lines.append(f"  device events in: {self.device_events_in}")
            for fate, count in sorted(self.device_fates.items()):
                lines.append(f"    {count:7d}  {fate}")
        if self.gpu_syncs:
            lines.append("  blocking GPU calls on host threads:")
            for fate, count in sorted(self.gpu_syncs.items()):
                lines.append(f"    {count:7d}  {fate}")
        lines.append(f"  ET nodes out: {self.et_nodes_out}")
        for kind, count in sorted(self.et_nodes_by_type.items()):
            lines.append(f"    {count:7d}  {kind}")
        by_type = Counter(c["comm_type"] for c in self.collectives)
        colls = ", ".join(f"{k} x{v}" for k, v in sorted(by_type.items())) or "none"
        lines.append(f"  collectives: {colls}; point-to-point: {len(self.p2p)}")
        for name, ranks in self.process_groups.items():
            lines.append(f"  process group {name}: ranks {ranks}")
        replay = f"  critical path {self.critical_path_us / 1000:.3f} ms"
        if self.measured_step_us:
            replay += (
                f" vs measured step {self.measured_step_us / 1000:.3f} ms"
                f" ({self.replay_error_pct:+.1f}%)"
            )
        lines.append(replay)
        lines.extend(f"  warning: {w}" for w in self.warnings)
        return "\n".join(lines)
