"""``trainsim presets``: every preset listed with the figures of the preset objects themselves."""

from __future__ import annotations

import json
from typing import Any

import pytest

from trainsim.engine import CLUSTER_PRESETS, SystemConfigError, default_cluster
from trainsim.models import DEVICE_PRESETS, MODEL_PRESETS
from trainsim.studies.cli._main import main
from trainsim.studies.cli._presets import KINDS
from trainsim.topology import SPEC_KINDS, DimKind, SpecError, parse_spec, spec_help


def _json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert main(["presets", *argv, "--json"]) == 0
    record: dict[str, Any] = json.loads(capsys.readouterr().out)
    return record


def _cluster_of(device: str) -> str | None:
    try:
        return default_cluster(device)
    except SystemConfigError:
        return None


def test_json_lists_every_preset_with_its_figures(capsys: pytest.CaptureFixture[str]) -> None:
    record = _json([], capsys)
    assert list(record) == list(KINDS)

    models = {m["name"]: m for m in record["models"]}
    assert list(models) == list(MODEL_PRESETS)
    for name, spec in MODEL_PRESETS.items():
        row = models[name]
        assert row["params"] == spec.num_params
        assert row["active_params"] == spec.num_active_params
        assert row["num_layers"] == spec.num_layers
        assert row["hidden_size"] == spec.hidden_size
        assert row["num_heads"] == spec.num_heads
        assert row["num_kv_heads"] == spec.kv_heads
        assert row["seq_len"] == spec.seq_len
        assert row["num_experts"] == spec.num_experts
        assert row["top_k"] == spec.top_k
    # An MoE preset is told apart from a dense one.
    assert models["mixtral-8x7b"]["active_params"] < models["mixtral-8x7b"]["params"]

    devices = {d["name"]: d for d in record["devices"]}
    assert list(devices) == list(DEVICE_PRESETS)
    for name, device in DEVICE_PRESETS.items():
        row = devices[name]
        assert row["peak_bf16_tflops"] == device.peak_tflops["bf16"]
        assert row["peak_fp8_tflops"] == device.peak_tflops.get("fp8")
        assert row["peak_tflops"] == device.peak_tflops
        assert row["memory_gib"] == device.memory_gib
        assert row["hbm_bandwidth_gbps"] == device.hbm_bandwidth_gbps
        assert row["default_cluster"] == _cluster_of(name)

    clusters = {c["name"]: c for c in record["clusters"]}
    assert list(clusters) == list(CLUSTER_PRESETS)
    for name, preset in CLUSTER_PRESETS.items():
        row = clusters[name]
        assert row["gpus_per_node"] == preset.gpus_per_node
        assert row["scale_up_kind"] == preset.intra_kind.value
        assert row["scale_up_bandwidth_gbps"] == preset.intra_bandwidth_gbps
        assert row["scale_out_bandwidth_gbps"] == preset.scale_out_bandwidth_gbps
        assert row["scale_out_latency_us"] == preset.scale_out_latency_us
        assert row["default_for_devices"] == [d for d in DEVICE_PRESETS if _cluster_of(d) == name]
        assert (row["nccl"] is None) == (preset.nccl is None)


def test_text_tables_name_every_preset_in_aligned_columns(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["presets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    starts = {line.split()[0] for line in lines if line.strip()}
    for name in (*MODEL_PRESETS, *DEVICE_PRESETS, *CLUSTER_PRESETS):
        assert name in starts, name
    # Right-aligned figures end under their header: HBM capacity, one row per device.
    header = next(line for line in lines if line.startswith("device "))
    end = header.index("HBM GiB") + len("HBM GiB")
    rows = [line for line in lines if line.split() and line.split()[0] in DEVICE_PRESETS]
    assert len(rows) == len(DEVICE_PRESETS)
    for row in rows:
        device = DEVICE_PRESETS[row.split()[0]]
        assert row[:end].split()[-1] == f"{device.memory_gib:g}"
        assert row[end] == " "


@pytest.mark.parametrize("kind", KINDS)
def test_one_kind_alone(kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert list(_json([kind], capsys)) == [kind]
    assert main(["presets", kind]) == 0
    out = capsys.readouterr().out
    titles = {line.split()[0] for line in out.splitlines() if "(--" in line}
    assert titles == {kind}


def test_unknown_kind_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["presets", "gpus"]) == 2
    err = capsys.readouterr().err.strip()
    assert "gpus" in err and "models" in err and "\n" not in err


def test_topologies_are_the_parser_table(capsys: pytest.CaptureFixture[str]) -> None:
    record = _json(["topologies"], capsys)["topologies"]
    assert [k["form"] for k in record["kinds"]] == [k.form for k in SPEC_KINDS]
    assert record["grammar"] == spec_help()
    # Every kind listed parses, and every dimension kind the network model has is listed.
    for kind in SPEC_KINDS:
        for name in (kind.kind, *kind.aliases):
            assert parse_spec(kind.example.replace(kind.kind, name, 1)).num_npus > 1
        if not kind.dimension and "x" not in kind.form:
            with pytest.raises(SpecError, match="cannot be combined"):
                parse_spec(f"{kind.example},ring:2")
    listed = {DimKind.parse(k.kind) for k in SPEC_KINDS if k.dimension}
    assert listed == set(DimKind)
    # The defaults listed are what a bare item gets, and the grammar text quotes them.
    link = next(iter(parse_spec("fc:4").links()))
    assert link.bandwidth_gbps == record["default_bandwidth_gbps"]
    assert link.latency_us == record["default_latency_us"]
    assert f"defaults {link.bandwidth_gbps:g} GB/s and {link.latency_us:g} us" in record["grammar"]
