"""Readers: ASTRA-sim network YAML as ASTRA-sim ships it, TACOS edge lists, spec strings."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainsim.topology import (
    GIB_PER_GB,
    DimKind,
    SpecError,
    parse_spec,
    read_astra_network,
    read_edge_list,
)

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
WORKLOADS = DATA / "reference" / "astra-sim-workloads"
TACOS = DATA / "reference" / "tacos-topologies"


@pytest.mark.parametrize("case", ["dp_overlap_8", "pipeline_4", "official_chakra_generator_2npu"])
def test_reads_astra_network_files(case: str) -> None:
    t = read_astra_network(WORKLOADS / case / "network.yml")
    assert t.dims
    text = (WORKLOADS / case / "network.yml").read_text()
    assert t.dims[0].kind.value in text
    assert t.num_npus == t.dims[0].npus


def test_astra_units_are_gib_and_ns() -> None:
    t = read_astra_network(WORKLOADS / "dp_overlap_8" / "network.yml")
    assert t.dims[0].kind is DimKind.RING
    assert t.dims[0].bandwidth_gbps == pytest.approx(50 * GIB_PER_GB)
    assert t.dims[0].latency_us == pytest.approx(0.5)


def test_astra_yaml_errors_name_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "net.yml"
    bad.write_text("topology: [Ring, Switch]\nnpus_count: [4]\nbandwidth: [1]\nlatency: [1]\n")
    with pytest.raises(SpecError, match="differ in length"):
        read_astra_network(bad)
    bad.write_text("topology: [Torus]\nnpus_count: [4]\nbandwidth: [1]\nlatency: [1]\n")
    with pytest.raises(SpecError, match=r"topology\[0\]"):
        read_astra_network(bad)
    bad.write_text("topology: [Ring]\nnpus_count: [4]\nbandwidth: [-1]\nlatency: [1]\n")
    with pytest.raises(SpecError, match=r"bandwidth\[0\]"):
        read_astra_network(bad)


@pytest.mark.parametrize("name", sorted(p.name for p in TACOS.glob("*.txt")))
def test_reads_every_tacos_edge_list(name: str) -> None:
    t = read_edge_list(TACOS / name)
    lines = [ln for ln in (TACOS / name).read_text().splitlines() if ln.strip()]
    assert t.num_npus == int(lines[0])
    assert t.graph.number_of_edges() == len(lines) - 1
    src, dst, bw, lat = lines[1].split()
    link = t.link(int(src), int(dst))
    assert link.bandwidth_gbps == pytest.approx(float(bw) * GIB_PER_GB)
    assert link.latency_us == pytest.approx(float(lat))


def test_edge_list_errors_name_the_line(tmp_path: Path) -> None:
    f = tmp_path / "e.txt"
    f.write_text("4\n0 1 50 0.5\n1 2 fifty 0.5\n")
    with pytest.raises(SpecError, match=":3:"):
        read_edge_list(f)


def test_spec_strings() -> None:
    t = parse_spec("ring:4@200GiBps/100ns,switch:4@50GiBps/500ns")
    assert [d.kind for d in t.dims] == [DimKind.RING, DimKind.SWITCH]
    assert t.dims[0].bandwidth_gbps == pytest.approx(200 * GIB_PER_GB)
    assert t.dims[1].latency_us == pytest.approx(0.5)
    assert parse_spec("torus:4x4x2").num_npus == 32
    assert parse_spec("mesh:3x3").num_npus == 9
    assert parse_spec("hypercube:3").num_npus == 8
    assert parse_spec("fattree:16").num_npus == 16
    assert parse_spec("dgx:2").num_npus == 16
    assert parse_spec("fc:8@100/1us").dims[0].bandwidth_gbps == 100.0


@pytest.mark.parametrize("spec", ["", "ring", "ring:x", "blob:4", "torus:4x4,ring:2", "ring:4x4"])
def test_bad_specs_are_rejected(spec: str) -> None:
    with pytest.raises(SpecError):
        parse_spec(spec)
