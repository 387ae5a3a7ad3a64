"""Short spec strings for the command line, e.g. ``ring:8`` or ``ring:4@200/0.1,switch:4``."""

from __future__ import annotations

import re

from ._build_basic import hypercube, mesh, multi_dimensional, torus
from ._build_cluster import dgx_cluster, fat_tree
from ._errors import SpecError
from ._model import GIB_PER_GB, Dimension, DimKind, Topology

__all__ = ["parse_spec"]

_ITEM = re.compile(
    r"^(?P<kind>[a-z_-]+):(?P<size>[0-9x]+)"
    r"(?:@(?P<bw>[0-9.]+)(?P<bwunit>gbps|gibps)?)?"
    r"(?:/(?P<lat>[0-9.]+)(?P<latunit>us|ns)?)?$"
)

_DEFAULT_BW_GBPS = 50.0
_DEFAULT_LAT_US = 0.5


def parse_spec(spec: str) -> Topology:
    """Build a topology from a spec string.

    Grammar: comma-separated dimensions ``KIND:N[@BW[GBps|GiBps]][/LAT[us|ns]]`` with KIND one
    of ``ring``, ``fc``, ``switch``, ``mesh`` (an ASTRA-sim multi-dimensional network), or a
    single whole-network item: ``torus:4x4``, ``mesh:4x4``, ``hypercube:3``, ``fattree:64``,
    ``dgx:2`` (nodes of 8 GPUs). Bandwidth defaults to GB/s (1e9 bytes/s), latency to us.

    >>> parse_spec("ring:4@200/100ns,switch:4").num_npus
    16
    >>> parse_spec("torus:4x4").dims[1].kind.value
    'Ring'
    """
    text = spec.strip().lower().replace(" ", "")
    if not text:
        raise SpecError("empty topology spec")
    items = text.split(",")
    parsed = []
    for item in items:
        match = _ITEM.match(item)
        if match is None:
            raise SpecError(
                f"topology spec item {item!r} is not KIND:N[@BW[GBps|GiBps]][/LAT[us|ns]]"
            )
        parsed.append(match)
    kinds = [m["kind"] for m in parsed]
    whole = {"torus", "hypercube", "fattree", "fat_tree", "dgx"}
    grid_mesh = kinds == ["mesh"] and "x" in parsed[0]["size"]
    if grid_mesh or any(k in whole for k in kinds):
        if len(parsed) != 1:
            raise SpecError(f"spec {spec!r}: {kinds[0]} cannot be combined with other items")
        return _whole(parsed[0], spec)
    dims = []
    for match in parsed:
        try:
            kind = DimKind.parse(match["kind"])
        except ValueError as exc:
            raise SpecError(f"spec {spec!r}: {exc}") from None
        if "x" in match["size"]:
            raise SpecError(f"spec {spec!r}: dimension {match['kind']} takes one size")
        bw, lat = _figures(match)
        dims.append(Dimension(kind, int(match["size"]), bw, lat))
    return multi_dimensional(dims)


def _figures(match: re.Match[str]) -> tuple[float, float]:
    bw = float(match["bw"]) if match["bw"] else _DEFAULT_BW_GBPS
    if match["bwunit"] == "gibps":
        bw *= GIB_PER_GB
    lat = float(match["lat"]) if match["lat"] else _DEFAULT_LAT_US
    if match["latunit"] == "ns":
        lat /= 1000.0
    return bw, lat


def _whole(match: re.Match[str], spec: str) -> Topology:
    kind = match["kind"]
    bw, lat = _figures(match)
    try:
        sizes = [int(s) for s in match["size"].split("x")]
    except ValueError:
        raise SpecError(f"spec {spec!r}: bad size {match['size']!r}") from None
    if kind == "torus":
        return torus(sizes, bandwidth_gbps=bw, latency_us=lat)
    if kind == "mesh":
        return mesh(sizes, bandwidth_gbps=bw, latency_us=lat)
    if kind == "hypercube":
        return hypercube(sizes[0], bandwidth_gbps=bw, latency_us=lat)
    if kind in ("fattree", "fat_tree"):
        return fat_tree(sizes[0], bandwidth_gbps=bw, latency_us=lat)
    if match["bw"]:
        return dgx_cluster(sizes[0], nic_bandwidth_gbps=bw)
    return dgx_cluster(sizes[0])
