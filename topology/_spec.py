"""Short spec strings for the command line, e.g. ``ring:8`` or ``ring:4@200/0.1,switch:4``.

``SPEC_KINDS`` is the grammar's own table of kinds: ``parse_spec`` reads its whole-network
kinds from it, and ``spec_help`` and ``trainsim presets topologies`` print it, so the help a
user reads is the grammar the parser accepts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ._build_basic import hypercube, mesh, multi_dimensional, torus
from ._build_cluster import dgx_cluster, fat_tree
from ._errors import SpecError
from ._model import GIB_PER_GB, Dimension, DimKind, Topology

__all__ = ["SPEC_KINDS", "SpecKind", "parse_spec", "spec_help"]

_ITEM = re.compile(
    r"^(?P<kind>[a-z_-]+):(?P<size>[0-9x]+)"
    r"(?:@(?P<bw>[0-9.]+)(?P<bwunit>gbps|gibps)?)?"
    r"(?:/(?P<lat>[0-9.]+)(?P<latunit>us|ns)?)?$"
)

#: Link bandwidth (1e9 bytes/s per direction) and per-hop latency of an item without them.
_DEFAULT_BW_GBPS = 50.0
_DEFAULT_LAT_US = 0.5


@dataclass(frozen=True)
class SpecKind:
    """One KIND of the spec grammar, as help text shows it: its form, an example, what it builds.

    A ``dimension`` kind is one dimension of an ASTRA-sim multi-dimensional network and may be
    combined with others by commas; any other kind is a whole network and stands alone.
    ``aliases`` are the other spellings the parser accepts.
    """

    kind: str
    form: str
    example: str
    dimension: bool
    builds: str
    aliases: tuple[str, ...] = ()


# The figures quoted below are the builders' own keyword defaults, read rather than retyped.
_DGX = dgx_cluster.__kwdefaults__ or {}
_FAT_TREE = fat_tree.__kwdefaults__ or {}

#: Every KIND ``parse_spec`` accepts, dimensions first (``DimKind.parse`` reads their names).
SPEC_KINDS: tuple[SpecKind, ...] = (
    SpecKind("ring", "ring:N", "ring:8", True, "N NPUs in a bidirectional ring"),
    SpecKind(
        "fc",
        "fc:N",
        "fc:8@64",
        True,
        "N NPUs, every pair linked directly",
        ("fullyconnected", "fully_connected"),
    ),
    SpecKind("switch", "switch:N", "switch:8", True, "N NPUs on one switch (2 hops a pair)"),
    SpecKind("mesh", "mesh:N", "mesh:4", True, "N NPUs in a line (no wrap-around link)"),
    SpecKind("torus", "torus:AxB[xC...]", "torus:4x4", False, "a ring along every axis"),
    SpecKind("mesh", "mesh:AxB[xC...]", "mesh:4x4", False, "a line along every axis"),
    SpecKind(
        "hypercube", "hypercube:D", "hypercube:3", False, "2^D NPUs, linked if ids differ in 1 bit"
    ),
    SpecKind(
        "fattree",
        "fattree:N",
        "fattree:64",
        False,
        f"N NPUs on a leaf/spine fat tree, {_FAT_TREE['npus_per_leaf']} NPUs per leaf",
        ("fat_tree",),
    ),
    SpecKind(
        "dgx",
        "dgx:N",
        "dgx:2@25",
        False,
        f"N nodes of {_DGX['gpus_per_node']} GPUs: NVSwitch "
        f"{_DGX['nvlink_bandwidth_gbps']:g} GB/s/{_DGX['nvlink_latency_us']:g} us "
        f"inside, one NIC per GPU {_DGX['nic_bandwidth_gbps']:g} GB/s/"
        f"{_DGX['nic_latency_us']:g} us outside; @BW sets the NIC, /LAT is not read",
    ),
)

#: Kinds that are a whole network on their own (``mesh`` is one only with an ``AxB`` size).
_WHOLE_NETWORK_KINDS = frozenset(
    name for k in SPEC_KINDS if not k.dimension for name in (k.kind, *k.aliases)
) - frozenset(k.kind for k in SPEC_KINDS if k.dimension)


def spec_help() -> str:
    """The spec grammar in one paragraph, for the ``--topology`` help of every command."""
    dims = ", ".join(k.kind for k in SPEC_KINDS if k.dimension)
    whole = ", ".join(k.example for k in SPEC_KINDS if not k.dimension)
    return (
        f"network spec: comma-separated dimensions KIND:N[@BW][/LAT], KIND one of {dims} "
        f"(the first varies fastest in NPU ids), BW per link in GB/s (1e9 B/s; or 100GiBps), "
        f"LAT per hop in us (or 500ns); defaults {_DEFAULT_BW_GBPS:g} GB/s and "
        f"{_DEFAULT_LAT_US:g} us; e.g. ring:8, fc:8@64, ring:4@200/100ns,switch:4; "
        f"or one whole network: {whole} (all kinds: trainsim presets topologies)"
    )


def parse_spec(spec: str) -> Topology:
    """Build a topology from a spec string.

    Grammar: comma-separated dimensions ``KIND:N[@BW[GBps|GiBps]][/LAT[us|ns]]`` with KIND one
    of ``ring``, ``fc``, ``switch``, ``mesh`` (an ASTRA-sim multi-dimensional network), or a
    single whole-network item: ``torus:4x4``, ``mesh:4x4``, ``hypercube:3``, ``fattree:64``,
    ``dgx:2`` (nodes of 8 GPUs). Bandwidth defaults to GB/s (1e9 bytes/s), latency to us;
    an item without them gets 50 GB/s and 0.5 us per link (``SPEC_KINDS`` lists every kind).

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
    whole = _WHOLE_NETWORK_KINDS
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
