"""Topology and compression what-ifs: one thing varied, the change reported."""

from __future__ import annotations

import json

import pytest

from trainsim.engine import cluster_system, predict
from trainsim.models import ParallelPlan, model_from_mapping
from trainsim.studies import SweepConfigError, compression_whatif, topology_whatif
from trainsim.studies.cli import main

_MODEL = model_from_mapping(
    {
        "name": "tiny",
        "num_layers": 8,
        "hidden_size": 2048,
        "num_heads": 16,
        "vocab_size": 8192,
        "seq_len": 1024,
    }
)
#: Data parallel over two nodes, so the scale-out network carries the gradient all-reduce.
_PLAN = ParallelPlan.for_gpus(16, tp=2, global_batch_size=64, overlap_grad_reduce=False)


def test_scale_out_bandwidth_whatif_speeds_up_with_bandwidth() -> None:
    result = topology_whatif(
        _MODEL, _PLAN, device="h100-sxm", vary="scale_out_bandwidth_gbps", values=[25, 50, 100]
    )
    times = [r.step_time_s for r in result.rows]
    assert [r.value for r in result.rows] == ["25", "50", "100"]
    assert times[0] > times[1] > times[2]
    assert result.rows[0].speedup == 1.0 and result.rows[2].speedup > 1.0
    # The built-in figure (50 GB/s on dgx-h100) reproduces the built-in cluster.
    builtin = predict(_MODEL, _PLAN, cluster_system("h100-sxm", 16))
    assert times[1] == pytest.approx(builtin.step_time_s, rel=1e-12)
    assert len(result.to_dataframe()) == 3


def test_cluster_preset_whatif_and_errors() -> None:
    result = topology_whatif(
        _MODEL, _PLAN, device="h100-sxm", vary="cluster", values=["dgx-h100", "hgx-h800"]
    )
    assert result.rows[1].step_time_s > result.rows[0].step_time_s  # slower NVLink on H800
    assert [r.value for r in result.rows] == ["dgx-h100 (h100-sxm)", "hgx-h800 (h800)"]


def test_cluster_whatif_runs_each_clusters_own_device() -> None:
    """hgx-h200 is the dgx-h100 network with H200s: it must not predict the H100 again."""
    result = topology_whatif(
        _MODEL,
        _PLAN,
        device="h100-sxm",
        vary="cluster",
        values=["dgx-h100", "hgx-h200", "gcp-a3-mega"],
    )
    h100, h200, a3 = result.rows
    on_h200 = predict(_MODEL, _PLAN, cluster_system("h200", 16))
    assert h200.step_time_s == pytest.approx(on_h200.step_time_s, rel=1e-12)
    assert h200.step_time_s < h100.step_time_s  # faster HBM, same network
    # A3 Mega is built with H100s: the device stays, the network changes.
    assert a3.value == "gcp-a3-mega (h100-sxm)"
    assert "each cluster with its own device" in result.format()
    with pytest.raises(SweepConfigError, match="vary"):
        topology_whatif(_MODEL, _PLAN, vary="colour", values=[1])  # type: ignore[arg-type]
    with pytest.raises(SweepConfigError, match="> 0"):
        topology_whatif(_MODEL, _PLAN, values=[-5])


def test_compression_whatif_compares_with_none() -> None:
    result = compression_whatif(_MODEL, _PLAN, device="h100-sxm", methods=["adacomp", "scalecom"])
    assert [r.value for r in result.rows] == ["none", "adacomp", "scalecom"]
    assert result.rows[0].speedup == 1.0
    assert all(r.step_time_s > 0 for r in result.rows)
    with pytest.raises(SweepConfigError, match="methods"):
        compression_whatif(_MODEL, _PLAN, methods=["zip"])


_CLI = [
    "--model", "llama3-8b", "--layers", "4", "--hidden", "1024", "--heads", "8",
    "--kv-heads", "8", "--ffn", "2048", "--vocab", "8192", "--seq", "1024",
    "--gpus", "16", "--tp", "2", "--global-batch", "32",
]  # fmt: skip


def test_cli_whatif_json(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["whatif", "topology", *_CLI, "--vary", "scale-out-bandwidth-gbps"]
    assert main([*argv, "--values", "25,50,100", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["parameter"] == "scale_out_bandwidth_gbps" and data["baseline"] == "25"
    assert len(data["rows"]) == 3
    assert main(["whatif", "compression", *_CLI, "--ratios", "50", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [r["value"] for r in data["rows"]] == ["none", "adacomp x50", "scalecom x50"]
    assert main(["whatif", "compression", *_CLI, "--methods", "zip", "--json"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
