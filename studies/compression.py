"""Run the gradient-compression learners study: ``python -m studies.compression [OUT_DIR]``.

Writes ``compression_learners.csv`` and ``compression_learners.png`` and prints the
crossover learner counts next to the closed form.
"""

from __future__ import annotations

import sys
from pathlib import Path

from trainsim.studies._compression import (
    DEFAULT_LEARNERS,
    LearnersStudy,
    adacomp_crossover_closed_form,
    learners_study,
)

__all__ = ["LearnersStudy", "adacomp_crossover_closed_form", "learners_study", "main"]


def main(argv: list[str] | None = None) -> int:
    """Run the default study, write its CSV and plot under the given folder, print a summary."""
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0]) if args else Path(".")
    out.mkdir(parents=True, exist_ok=True)
    study = learners_study(DEFAULT_LEARNERS)
    study.to_dataframe().to_csv(out / "compression_learners.csv", index=False)
    study.plot(out / "compression_learners.png")
    s = study.settings
    closed = adacomp_crossover_closed_form(
        float(s["gradient_bytes"]),
        float(s["adacomp_ratio"]),
        12.5,
        2.0,
        memory_bandwidth_gbps=float(s["memory_bandwidth_gbps"]),
    )
    print(
        f"AdaComp loses to dense from {study.adacomp_crossover} learners "
        f"(closed form {closed:.1f}); ScaleCom crossover: {study.scalecom_crossover}"
    )
    for p in study.points:
        row = "  ".join(f"{k} {v:8.2f} h" for k, v in p.hours.items())
        print(f"{p.learners:5d} learners  {row}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
