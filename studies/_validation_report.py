"""The validation study's results: one row per published metric, and the report over them.

``ValidationRow`` holds a measurement, our prediction of it (or why there is none) and what
groups it; ``ValidationReport`` summarises the rows by source (mean absolute percentage error,
signed bias, per-group and per-metric errors, worst rows), ranks the plans of runs that differ
only in their plan (``studies._validation_ranking``), and renders text or JSON.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from trainsim.studies._validation_ranking import plan_rankings, ranking_dict, ranking_lines

__all__ = ["ValidationReport", "ValidationRow"]


@dataclass
class ValidationRow:
    """One published metric, our prediction of it, or why there is none."""

    source: str
    model: str
    gpus: str
    metric: str
    measured: float | None
    predicted: float | None = None
    skipped: str | None = None
    #: Further published metrics of the same run: name -> (measured, predicted).
    secondary: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    #: Groups the run belongs to for a per-group summary (e.g. ``{"gpu": "h100_80gb"}``).
    groups: dict[str, str] = field(default_factory=dict)
    #: The run's configuration in one line, shown in the worst-rows list.
    config: str = ""
    #: What the run trains on what (model, GPUs, batch...): rows sharing it differ only in
    #: their plan, and ``plan_rankings`` compares their order
    run_key: str = ""

    @property
    def signed_error(self) -> float | None:
        """Prediction over measurement, less one (-0.05: predicted 5% below the measurement)."""
        if self.measured is None or self.predicted is None or not self.measured:
            return None
        return (self.predicted - self.measured) / abs(self.measured)

    @property
    def error(self) -> float | None:
        """Absolute percentage error (0.05 = 5%)."""
        signed = self.signed_error
        return None if signed is None else abs(signed)


@dataclass
class ValidationReport:
    """Every row with its error, and the mean absolute percentage error per source."""

    rows: list[ValidationRow] = field(default_factory=list)
    #: What the study could not score as a whole (e.g. a source table it did not find).
    notes: list[str] = field(default_factory=list)

    def mape_by_source(self) -> dict[str, tuple[float, int]]:
        """Source label -> (mean absolute percentage error, rows predicted)."""
        errors: dict[str, list[float]] = defaultdict(list)
        for row in self.rows:
            if row.error is not None:
                errors[row.source].append(row.error)
        return {s: (sum(e) / len(e), len(e)) for s, e in errors.items()}

    def signed_mean_by_source(self) -> dict[str, float]:
        """Source label -> mean signed error (negative: predictions below the measurements)."""
        errors: dict[str, list[float]] = defaultdict(list)
        for row in self.rows:
            if row.signed_error is not None:
                errors[row.source].append(row.signed_error)
        return {s: sum(e) / len(e) for s, e in errors.items()}

    def worst_rows(self, source: str, count: int = 5) -> list[ValidationRow]:
        """The ``count`` predicted rows of a source with the largest absolute error."""
        scored = [r for r in self.rows if r.source == source and r.error is not None]
        return sorted(scored, key=lambda r: -(r.error or 0.0))[:count]

    def group_errors(self, source: str) -> dict[tuple[str, str], tuple[float, float, int]]:
        """(group kind, group) -> (MAPE, mean signed error, rows) over one source's rows."""
        errors: dict[tuple[str, str], list[float]] = defaultdict(list)
        for row in self.rows:
            if row.source == source and row.signed_error is not None:
                for kind, group in row.groups.items():
                    errors[(kind, group)].append(row.signed_error)
        return {
            key: (sum(map(abs, e)) / len(e), sum(e) / len(e), len(e)) for key, e in errors.items()
        }

    def secondary_errors(self, source: str) -> dict[str, tuple[float, float, int]]:
        """Secondary metric -> (MAPE, mean signed error, rows) over one source's rows."""
        errors: dict[str, list[float]] = defaultdict(list)
        for row in self.rows:
            if row.source != source or row.skipped:
                continue
            for name, (published, predicted) in row.secondary.items():
                if published and predicted is not None:
                    errors[name].append((predicted - published) / abs(published))
        return {
            name: (sum(map(abs, e)) / len(e), sum(e) / len(e), len(e)) for name, e in errors.items()
        }

    def step_time_mape(self, source: str) -> float | None:
        """MAPE over the step-time rows of one source (None if it has none)."""
        errs = [
            r.error
            for r in self.rows
            if r.source == source and r.metric.startswith("step_time") and r.error is not None
        ]
        return sum(errs) / len(errs) if errs else None

    def format(self) -> str:
        """A plain-text table of every row and the per-source summary."""
        lines = [
            f"{'source':<26} {'model':<22} {'gpus':>5} {'metric':<40} {'measured':>10} "
            f"{'predicted':>10} {'error':>7}"
        ]
        for r in self.rows:
            measured = "" if r.measured is None else f"{r.measured:.4g}"
            if r.skipped:
                lines.append(
                    f"{r.source:<26} {r.model[:22]:<22} {r.gpus:>5} {r.metric[:40]:<40} "
                    f"{measured:>10} {'skipped: ' + r.skipped}"
                )
                continue
            predicted = "" if r.predicted is None else f"{r.predicted:.4g}"
            error = "" if r.signed_error is None else f"{r.signed_error:+.1%}"
            lines.append(
                f"{r.source:<26} {r.model[:22]:<22} {r.gpus:>5} {r.metric[:40]:<40} "
                f"{measured:>10} {predicted:>10} {error:>7}"
            )
        lines.append("")
        lines.append("mean absolute percentage error by source (error column: signed):")
        signed = self.signed_mean_by_source()
        mapes = sorted(self.mape_by_source().items())
        for source, (mape, count) in mapes:
            line = (
                f"  {source:<26} {mape:6.1%} over {count} rows, mean signed {signed[source]:+.1%}"
            )
            steps = self.step_time_mape(source)
            if steps is not None:
                line += f"; step times alone {steps:.1%}"
            lines.append(line)
            for name, (m, s, n) in sorted(self.secondary_errors(source).items()):
                lines.append(f"    {name:<32} {m:6.1%} over {n} rows, mean signed {s:+.1%}")
            for (kind, group), (m, s, n) in sorted(self.group_errors(source).items()):
                label = f"{kind}={group}"
                lines.append(f"    {label:<32} {m:6.1%} over {n} rows, mean signed {s:+.1%}")
        skipped = [r for r in self.rows if r.skipped]
        if skipped:
            lines.append(f"  {len(skipped)} rows skipped (reasons in the table above)")
        lines.append("")
        lines.append("worst rows by source:")
        for source, _ in mapes:
            lines.append(f"  {source}:")
            for r in self.worst_rows(source):
                config = f" [{r.config}]" if r.config else ""
                lines.append(
                    f"    {r.signed_error or 0.0:+7.1%}  {r.model} on {r.gpus} GPUs, {r.metric}: "
                    f"measured {r.measured:.4g}, predicted {r.predicted:.4g}{config}"
                )
        lines.append("")
        lines.extend(ranking_lines(plan_rankings(self.rows)))
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return {
            "mape_by_source": {
                s: {
                    "mape": m,
                    "rows": n,
                    "signed_mean": self.signed_mean_by_source()[s],
                    "secondary": {
                        k: {"mape": a, "signed_mean": b, "rows": c}
                        for k, (a, b, c) in self.secondary_errors(s).items()
                    },
                    "groups": {
                        f"{kind}={group}": {"mape": a, "signed_mean": b, "rows": c}
                        for (kind, group), (a, b, c) in self.group_errors(s).items()
                    },
                    "worst": [
                        {
                            "model": r.model,
                            "gpus": r.gpus,
                            "config": r.config,
                            "signed_error": r.signed_error,
                        }
                        for r in self.worst_rows(s)
                    ],
                }
                for s, (m, n) in self.mape_by_source().items()
            },
            "rows": [
                {**r.__dict__, "error": r.error, "signed_error": r.signed_error} for r in self.rows
            ],
            "plan_rankings": ranking_dict(plan_rankings(self.rows)),
            "notes": list(self.notes),
        }
