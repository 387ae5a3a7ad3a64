"""Readers of network files: ASTRA-sim's network YAML and TACOS-style edge lists."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import networkx as nx

from ._build_basic import multi_dimensional
from ._build_util import npu_graph
from ._errors import SpecError
from ._model import GIB_PER_GB, Dimension, DimKind, Topology

__all__ = ["astra_network_dims", "read_astra_network", "read_edge_list"]


def astra_network_dims(data: dict[str, Any], *, source: str = "<network>") -> list[Dimension]:
    """Dimensions from ASTRA-sim network YAML content (``topology``/``npus_count``/...).

    ``bandwidth`` is GB/s as ASTRA-sim reads it (2^30 bytes per second), converted here to
    ``bandwidth_gbps`` (1e9 bytes/s); ``latency`` is in ns, converted to ``latency_us``.
    """
    keys = ("topology", "npus_count", "bandwidth", "latency")
    for key in keys:
        if key not in data:
            raise SpecError(f"{source}: missing field {key!r} (needs {', '.join(keys)})")
        if not isinstance(data[key], list):
            raise SpecError(f"{source}: field {key!r} must be a list, got {data[key]!r}")
    lengths = {key: len(data[key]) for key in keys}
    if len(set(lengths.values())) != 1:
        raise SpecError(f"{source}: lists differ in length: {lengths}")
    dims = []
    for i, (kind, npus, bw, lat) in enumerate(zip(*(data[k] for k in keys), strict=True)):
        try:
            dim_kind = DimKind.parse(str(kind))
        except ValueError as exc:
            raise SpecError(f"{source}: topology[{i}]: {exc}") from None
        if not isinstance(npus, int) or npus < 1:
            raise SpecError(f"{source}: npus_count[{i}] must be a positive integer, got {npus!r}")
        if not isinstance(bw, (int, float)) or bw <= 0:
            raise SpecError(f"{source}: bandwidth[{i}] must be > 0 GB/s, got {bw!r}")
        if not isinstance(lat, (int, float)) or lat < 0:
            raise SpecError(f"{source}: latency[{i}] must be >= 0 ns, got {lat!r}")
        dims.append(Dimension(dim_kind, npus, float(bw) * GIB_PER_GB, float(lat) / 1000.0))
    return dims


def read_astra_network(path: str | Path) -> Topology:
    """Read an ASTRA-sim analytical-backend network YAML file as it is.

    >>> import tempfile, os
    >>> f = tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False)
    >>> _ = f.write("topology: [Ring]\\nnpus_count: [8]\\nbandwidth: [50]\\nlatency: [500]\\n")
    >>> f.close(); read_astra_network(f.name).num_npus
    8
    >>> os.unlink(f.name)
    """
    import yaml

    source = str(path)
    try:
        data = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as exc:
        raise SpecError(f"{source}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{source}: expected a mapping with topology/npus_count/bandwidth/latency")
    return multi_dimensional(astra_network_dims(data, source=source))


def read_edge_list(path: str | Path) -> Topology:
    """Read an edge list: first line the NPU count, then ``src dst bandwidth_GiBps latency_us``.

    Each line is one directed link (the TACOS format); bandwidth is GiB/s and is converted to
    ``bandwidth_gbps``. Node ids at or above the NPU count are switches.
    """
    source = str(path)
    lines = [ln.split("#")[0].strip() for ln in Path(path).read_text().splitlines()]
    numbered = [(i + 1, ln) for i, ln in enumerate(lines) if ln]
    if not numbered:
        raise SpecError(f"{source}: empty edge list")
    first_no, first = numbered[0]
    try:
        num_npus = int(first)
    except ValueError:
        raise SpecError(
            f"{source}:{first_no}: first line must be the NPU count, got {first!r}"
        ) from None
    graph: nx.DiGraph = npu_graph(num_npus)
    for line_no, line in numbered[1:]:
        parts = line.split()
        if len(parts) != 4:
            raise SpecError(
                f"{source}:{line_no}: expected 'src dst bandwidth_GiBps latency_us', got {line!r}"
            )
        try:
            src, dst = int(parts[0]), int(parts[1])
            bw, lat = float(parts[2]), float(parts[3])
        except ValueError:
            raise SpecError(f"{source}:{line_no}: non-numeric field in {line!r}") from None
        if bw <= 0 or lat < 0 or src < 0 or dst < 0 or src == dst:
            raise SpecError(
                f"{source}:{line_no}: bad link {line!r} (need src != dst, "
                "bandwidth > 0, latency >= 0)"
            )
        for node in (src, dst):
            if node not in graph:
                graph.add_node(node, kind="switch", label=f"switch{node}")
        graph.add_edge(src, dst, bandwidth_gbps=bw * GIB_PER_GB, latency_us=lat, dim=-1)
    return Topology(graph, name=Path(path).stem)
