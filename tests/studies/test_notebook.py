"""The quick-start notebook runs from top to bottom and tells where its figures are written."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from matplotlib.figure import Figure

NOTEBOOK = Path(__file__).resolve().parents[2] / "studies" / "notebooks" / "quickstart.ipynb"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
#: The notebook's announcement of a figure: "... written to /some/where/name.png".
WRITTEN = re.compile(r"written to (\S+\.png)$", re.MULTILINE)


def test_quickstart_notebook_executes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.chdir(NOTEBOOK.parent)
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    namespace: dict[str, object] = {"__name__": "__notebook__"}
    code_cells = [c for c in cells if c["cell_type"] == "code"]
    assert len(code_cells) >= 5
    for index, cell in enumerate(code_cells):
        source = "".join(cell["source"])
        exec(compile(source, f"{NOTEBOOK.name}[{index}]", "exec"), namespace)
    assert os.environ["MPLBACKEND"] == "Agg"
    printed = capsys.readouterr().out
    out_dir = Path(str(namespace["out_dir"]))
    assert f"written to {out_dir}" in printed  # where the converted traces and figures go

    # Every figure it writes, it names; every one it names is a PNG where it says.
    announced = [Path(p) for p in WRITTEN.findall(printed)]
    assert {p.name for p in announced} == {
        "sweep_pareto.png",
        "forecast_cdf.png",
        "forecast_histogram.png",
    }
    for png in announced:
        assert png.parent == out_dir
        assert png.read_bytes()[:8] == PNG_MAGIC, png

    # The figures behind those PNGs label what they show.
    figures = {k: v for k, v in namespace.items() if isinstance(v, Figure)}
    assert set(figures) == {"pareto_figure", "cdf_figure", "histogram_figure"}
    for name, fig in figures.items():
        assert fig.get_axes(), name
        for ax in fig.get_axes():
            assert ax.get_xlabel().strip() and ax.get_ylabel().strip(), name
            assert ax.get_title().strip(), name
            assert ax.get_legend() is not None, name
    hist_ax = figures["histogram_figure"].get_axes()[0]
    assert sum(1 for p in hist_ax.patches if p.get_height() > 0) > 1
    cdf_legend = figures["cdf_figure"].get_axes()[0].get_legend()
    quantiles = [t.get_text().split()[0] for t in cdf_legend.get_texts() if t.get_text()[0] == "P"]
    assert quantiles == ["P50", "P90", "P99"]
