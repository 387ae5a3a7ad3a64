"""Built-in clusters: GPU nodes with NVLink/NVSwitch inside and one NIC per GPU outside.

Each preset is the ASTRA-sim multi-dimensional form of a vendor reference system: dimension 0
is the node (8 GPUs on NVSwitch, or AMD's fully connected Infinity Fabric), dimension 1 the
scale-out network seen by one GPU (rail-optimised, one NIC per GPU, a non-blocking switch).
Bandwidths are per GPU and per direction, in GB/s (1e9 bytes/s), from the datasheets:

=========== ======================================= ============================
device      inside a node                           scale-out per GPU
=========== ======================================= ============================
a100-*      NVLink 3, 600 GB/s bidirectional: 300   HDR InfiniBand 200 Gb/s: 25
h100-sxm    NVLink 4, 900 GB/s bidirectional: 450   NDR InfiniBand 400 Gb/s: 50
h200        NVLink 4: 450                           NDR 400 Gb/s: 50
h800        NVLink (export), 400 bidirectional: 200 NDR 400 Gb/s: 50
b200        NVLink 5, 1.8 TB/s bidirectional: 900   ConnectX-7 400 Gb/s: 50
mi300x      7 Infinity Fabric links of 64 GB/s      RoCE 400 Gb/s: 50
=========== ======================================= ============================

``gcp-a3-mega`` is Google Cloud's A3-Mega: 8 H100 on NVLink 4 and 8 x 200 Gb/s
GPUDirect-TCPXO NICs per node (25 GB/s per GPU).

Latencies are stated assumptions, not measurements: 0.5 µs per NVLink/NVSwitch hop and 2 µs
per scale-out hop (switch and NIC traversal). Collectives under the ``nccl`` cost model take
NCCL's own protocol figures for NVLink and InfiniBand (``collectives.NcclParams``), which hold
for these hop latencies (a preset with other latencies moves each ring step by the
difference), except on
A3-Mega, whose TCPXO network is far slower to start a collective than InfiniBand. Its figures
were fitted once to the nccl-tests all-reduce log of ../shared/data (2 x 8 H100 A3-Mega, five
sizes): Simple's network hop from the intercept of the two largest messages (933 µs for 16
ranks, so 415 µs per network step); LL's from the line through the 1 MiB and 16 MiB points
(intercept 152 µs, so 67 µs per network step; bandwidth share 0.11). LL128 is left out, as
NCCL disables it on such paths. The nccl-tests rows of the validation study are therefore
this preset's calibration, not a test of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trainsim.collectives import (
    NCCL_REFERENCE_NET_HOP_US,
    NCCL_REFERENCE_NVLINK_HOP_US,
    NcclParams,
    NcclProtocol,
    SystemConfig,
)
from trainsim.engine._errors import SystemConfigError
from trainsim.engine._system import System
from trainsim.models import DEVICE_PRESETS, DeviceSpec, load_device
from trainsim.topology import Dimension, DimKind, Topology, multi_dimensional

__all__ = [
    "CLUSTER_PRESETS",
    "ClusterPreset",
    "cluster_device",
    "cluster_system",
    "default_cluster",
]


@dataclass(frozen=True)
class ClusterPreset:
    """A node design: GPUs per node, intra-node fabric and per-GPU scale-out bandwidth."""

    name: str
    #: The device preset this node is built with (vendor datasheets: DGX A100 640 GB has
    #: A100 80 GB parts, A3 Mega H100 80 GB SXM); swapping the cluster swaps the GPU too.
    device: str
    gpus_per_node: int
    intra_kind: DimKind
    intra_bandwidth_gbps: float
    scale_out_bandwidth_gbps: float
    # The hop latencies NCCL's protocol figures hold for: the nccl model adds what a
    # what-if puts on top of them (or takes off) to every ring step.
    intra_latency_us: float = NCCL_REFERENCE_NVLINK_HOP_US
    scale_out_latency_us: float = NCCL_REFERENCE_NET_HOP_US
    nccl: NcclParams | None = None

    def topology(self, gpus: int) -> Topology:
        """The ASTRA-sim multi-dimensional network of ``gpus`` GPUs on nodes of this design."""
        if gpus < 1:
            raise SystemConfigError(f"gpus={gpus} must be at least 1")
        per_node = min(self.gpus_per_node, gpus)
        if gpus % per_node:
            raise SystemConfigError(
                f"gpus={gpus} must be a multiple of the {self.gpus_per_node} GPUs per node of "
                f"{self.name}"
            )
        dims = [
            Dimension(self.intra_kind, per_node, self.intra_bandwidth_gbps, self.intra_latency_us)
        ]
        if gpus > per_node:
            dims.append(
                Dimension(
                    DimKind.SWITCH,
                    gpus // per_node,
                    self.scale_out_bandwidth_gbps,
                    self.scale_out_latency_us,
                )
            )
        return multi_dimensional(dims, name=f"{self.name}x{gpus // per_node}")


#: A3-Mega's NCCL figures over GPUDirect-TCPXO (fitted to the nccl-tests log; see above).
A3_MEGA_NCCL = NcclParams(
    protocols=(
        NcclProtocol(
            name="LL",
            base_latency_us=3.6,
            scale_up_hop_us=0.47,
            scale_out_hop_us=67.4,
            bandwidth_factor=0.11,
        ),
        NcclProtocol(
            name="Simple",
            base_latency_us=8.4,
            scale_up_hop_us=3.4,
            scale_out_hop_us=414.7,
            bandwidth_factor=1.0,
        ),
    )
)


CLUSTER_PRESETS: dict[str, ClusterPreset] = {
    p.name: p
    for p in (
        ClusterPreset("dgx-a100", "a100-80gb", 8, DimKind.SWITCH, 300.0, 25.0),
        ClusterPreset("dgx-h100", "h100-sxm", 8, DimKind.SWITCH, 450.0, 50.0),
        ClusterPreset("hgx-h200", "h200", 8, DimKind.SWITCH, 450.0, 50.0),
        ClusterPreset("hgx-h800", "h800", 8, DimKind.SWITCH, 200.0, 50.0),
        ClusterPreset("dgx-b200", "b200", 8, DimKind.SWITCH, 900.0, 50.0),
        ClusterPreset("mi300x-platform", "mi300x", 8, DimKind.FULLY_CONNECTED, 64.0, 50.0),
        ClusterPreset("gcp-a3-mega", "h100-sxm", 8, DimKind.SWITCH, 450.0, 25.0, nccl=A3_MEGA_NCCL),
    )
}

#: The default cluster of each device preset.
_DEFAULT_CLUSTER = {
    "a100-40gb": "dgx-a100",
    "a100-80gb": "dgx-a100",
    "h100-sxm": "dgx-h100",
    "h200": "hgx-h200",
    "h800": "hgx-h800",
    "b200": "dgx-b200",
    "mi300x": "mi300x-platform",
}


def default_cluster(device: str | DeviceSpec) -> str:
    """Name of the built-in cluster a device (preset, file or spec) runs on by default."""
    spec = load_device(device)
    name = _DEFAULT_CLUSTER.get(spec.name)
    if name is None:
        raise SystemConfigError(f"device {spec.name!r} has no default cluster; pass cluster=...")
    return name


def cluster_device(cluster: str, device: str | DeviceSpec) -> str | DeviceSpec:
    """The device a ``cluster`` preset runs: ``device`` when that is one of its GPUs, else its own.

    ``device`` stays when the cluster is its default (an A100 40 GB on ``dgx-a100``) or is
    built with it (an H100 on ``gcp-a3-mega``); a what-if that swaps ``dgx-h100`` for
    ``hgx-h200`` gets the H200 that node is built with, not the H100 with another name.
    """
    if cluster not in CLUSTER_PRESETS:
        allowed = ", ".join(sorted(CLUSTER_PRESETS))
        raise SystemConfigError(f"cluster {cluster!r} is not a preset (allowed: {allowed})")
    name = device.name if isinstance(device, DeviceSpec) else str(device)
    preset = CLUSTER_PRESETS[cluster]
    if name == preset.device or _DEFAULT_CLUSTER.get(name) == cluster:
        return device
    return preset.device


def cluster_system(
    device: str | DeviceSpec, gpus: int, *, cluster: str | None = None, **fields: Any
) -> System:
    """A ``System`` of ``gpus`` devices on a built-in cluster (the device's default if unset).

    ``device`` is a preset name, a device file or a ``DeviceSpec`` (e.g. one with measured
    GEMM rates, ``models.measure_gemm``); a device named like a preset gets its cluster.

    Extra keyword arguments are ``System`` fields (``cost_model``, ``scheduling``...). The
    cost model defaults to ``nccl``, the setting the validation study scores best with.
    """
    fields.setdefault("cost_model", "nccl")
    spec = load_device(device)
    name = cluster or default_cluster(spec)
    if name not in CLUSTER_PRESETS:
        allowed = ", ".join(sorted(CLUSTER_PRESETS))
        raise SystemConfigError(f"cluster {name!r} is not a preset (allowed: {allowed})")
    preset = CLUSTER_PRESETS[name]
    topo = preset.topology(gpus)
    if preset.nccl is not None and "collective" not in fields:
        fields["collective"] = SystemConfig(nccl=preset.nccl)
    # A preset travels by name (as system files write it); any other device as its spec.
    named = DEVICE_PRESETS.get(spec.name) == spec
    return System.with_topology(
        topo, name=f"{name} ({gpus} GPUs)", device=spec.name if named else spec, **fields
    )
