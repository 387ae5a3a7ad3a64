"""The GPU recorder: its timing against a simulated CUDA runtime, and running as a script.

No GPU is available to the tests: a stand-in for ``torch.cuda`` keeps a clock that kernels
advance, charges eager launches a host overhead that graph replays avoid, and can refuse
capture, so the timing logic (graph capture, replay, eager fallback, median) is exercised.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from trainsim.models import ModelsError, measured_device, record, tables_from_raw
from trainsim.models.record import _median_seconds, _timing_note

RECORDER = Path(record.__file__)

KERNEL_MS = 1.0
LAUNCH_MS = 0.5  # host launch overhead an eager call costs and a graph replay does not


class _FakeCuda:
    def __init__(self, capture_fails: bool) -> None:
        self.clock_ms = 0.0
        self.capturing: list[Any] | None = None
        self.capture_fails = capture_fails
        self.kernels = 0

    def kernel(self) -> None:
        if self.capturing is not None:
            self.capturing.append(self._run_kernel)
        else:
            self.clock_ms += LAUNCH_MS
            self._run_kernel()

    def _run_kernel(self) -> None:
        self.clock_ms += KERNEL_MS
        self.kernels += 1

    # torch.cuda surface used by the measurement
    def Event(self, enable_timing: bool) -> Any:
        cuda = self
        event = SimpleNamespace(at=0.0)
        event.record = lambda: setattr(event, "at", cuda.clock_ms)
        event.synchronize = lambda: None
        event.elapsed_time = lambda other: other.at - event.at
        return event

    def Stream(self) -> Any:
        return SimpleNamespace(wait_stream=lambda other: None)

    def current_stream(self) -> Any:
        return self.Stream()

    @contextmanager
    def stream(self, s: Any) -> Iterator[None]:
        yield

    def CUDAGraph(self) -> Any:
        graph = SimpleNamespace(calls=[])

        def replay() -> None:
            for call in graph.calls:
                call()

        graph.replay = replay
        return graph

    @contextmanager
    def graph(self, g: Any) -> Iterator[None]:
        if self.capture_fails:
            raise RuntimeError("operation not permitted when stream is capturing")
        self.capturing = g.calls
        try:
            yield
        finally:
            self.capturing = None

    def synchronize(self) -> None:
        pass


@pytest.mark.parametrize("capture_fails", [False, True])
def test_gpu_timing_replays_a_graph_or_falls_back(capture_fails: bool) -> None:
    cuda = _FakeCuda(capture_fails)
    torch = SimpleNamespace(cuda=cuda)
    seconds, graphed = _median_seconds(torch, cuda.kernel, True, 2, 10, 3)
    if capture_fails:
        # Eager calls pay the host's launch overhead; the fallback is recorded.
        assert seconds == pytest.approx((KERNEL_MS + LAUNCH_MS) / 1e3)
        assert not graphed
        assert "1 timings eagerly: capture failed" in _timing_note(3, 10, 2, True, 1)
    else:
        assert seconds == pytest.approx(KERNEL_MS / 1e3)
        assert graphed
        # Warm-up 2, one side-stream call before capture, then 3 replays of 10 kernels.
        assert cuda.kernels == 2 + 1 + 30
        assert _timing_note(3, 10, 2, True, 0).endswith("replayed as CUDA graphs")
    assert _timing_note(3, 10, 2, False, 0).endswith("(wall clock)")


def test_recorder_runs_as_a_script_without_the_package_dependencies(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    out = tmp_path / "raw.json"
    # A GPU machine may lack pydantic and the rest: the script must not import them.
    blocker = (
        "import runpy, sys\n"
        "for name in ('pydantic', 'networkx', 'scipy', 'google.protobuf'):\n"
        "    sys.modules[name] = None\n"
        f"sys.argv = ['record.py', '--out', {str(out)!r}, '--torch-device', 'cpu', "
        "'--dims', '16,32', '--seq-lens', '32', '--head-dims', '16', '--repeats', '1', "
        "'--trials', '1', '--quiet', '--dtype', 'fp32']\n"
        f"runpy.run_path({str(RECORDER)!r}, run_name='__main__')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", blocker], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    raw = json.loads(out.read_text())
    tables = tables_from_raw(raw)
    assert [type(t).__name__ for t in tables] == ["GemmMeasurement", "AttentionMeasurement"]
    assert "wall clock" in tables[0].source
    device = measured_device("h100-sxm", *tables)
    assert device.efficiency.measured_gemm("fp32") == tables[0]
    with pytest.raises(ModelsError, match="unknown key 'gemm'"):
        tables_from_raw({"gemm": []})
    bad = subprocess.run(
        [sys.executable, str(RECORDER), "--out", str(out), "--dims", "16,x"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2 and "expected comma-separated integers" in bad.stderr


def test_a_failing_table_keeps_the_ones_recorded_before_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("torch")

    def refuse(*args: object, **kwargs: object) -> None:
        raise RuntimeError("no kernel for this head dim\nmore lines")

    monkeypatch.setattr(record, "record_attention", refuse)
    out = tmp_path / "raw.json"
    argv = ["--out", str(out), "--torch-device", "cpu", "--dims", "16", "--quiet"]
    assert record.main([*argv, "--repeats", "1", "--trials", "1"]) == 2
    assert "record: error: no kernel for this head dim" in capsys.readouterr().err
    kept = json.loads(out.read_text())
    assert len(kept["gemm_measured"]) == 1 and kept["attention_measured"] == []


def test_recorder_without_pytorch_says_so(tmp_path: Path) -> None:
    blocker = (
        "import runpy, sys\n"
        "sys.modules['torch'] = None\n"
        f"sys.argv = ['record.py', '--out', {str(tmp_path / 'raw.json')!r}]\n"
        f"runpy.run_path({str(RECORDER)!r}, run_name='__main__')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", blocker], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "record: error: measuring a device needs PyTorch: pip install 'trainsim[torch]'"
    )
