"""The quick-start notebook runs from top to bottom (its code cells, in order)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "studies" / "notebooks" / "quickstart.ipynb"


def test_quickstart_notebook_executes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.chdir(NOTEBOOK.parent)
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    namespace: dict[str, object] = {"__name__": "__notebook__"}
    code_cells = [c for c in cells if c["cell_type"] == "code"]
    assert len(code_cells) >= 5
    for index, cell in enumerate(code_cells):
        source = "".join(cell["source"])
        exec(compile(source, f"{NOTEBOOK.name}[{index}]", "exec"), namespace)
    assert (Path(str(namespace["out_dir"])) / "cdf.png").is_file()
    assert os.environ["MPLBACKEND"] == "Agg"
