"""Converted real PyTorch traces replay through the engine close to their measured step."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import FIXTURES
from trainsim.chakra_et import convert_directory
from trainsim.engine import Scheduling, System, Workload, simulate

# Replay: recorded compute and communication durations, one CPU thread and one communication
# stream per rank as the recording had; the network figures are never used for recorded nodes.
REPLAY = System(network="switch:2@5/10", scheduling=Scheduling(measured_comm=True))


@pytest.mark.parametrize("case", ["single_transformer", "ddp_gloo_2rank"])
def test_converted_trace_replays_within_10_percent(case: str, tmp_path: Path) -> None:
    conversions = convert_directory(FIXTURES / "pytorch-cpu" / case, tmp_path)
    graphs = {c.report.rank or 0: c.graph for c in conversions}
    measured_us = max(c.report.measured_step_us or 0.0 for c in conversions)
    assert measured_us > 0
    workload = Workload.from_graphs(graphs, world_size=len(graphs))
    result = simulate(workload, REPLAY)
    error = abs(result.step_time_ns / 1000 - measured_us) / measured_us
    assert error < 0.10, (
        f"replayed {result.step_time_ns / 1e6:.3f} ms vs {measured_us / 1e3:.3f} ms"
    )
