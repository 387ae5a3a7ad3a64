"""``System``: the machine a workload runs on — devices, network, collectives and scheduling.

A system is data (pydantic, loadable from YAML/JSON) plus the topology it describes. The
network is given as a topology spec string (``"ring:8@50/0.5"``), an ASTRA-sim network YAML or
a TACOS edge list path, or a ready ``topology.Topology`` object (``System.with_topology``).
``System.from_astra`` reads ASTRA-sim's own network YAML and system JSON as they are.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from trainsim import topology
from trainsim.collectives import CompressionSpec, SystemConfig, read_astra_system
from trainsim.engine._config import load_model_file
from trainsim.engine._errors import SystemConfigError
from trainsim.models import DeviceSpec, load_device

__all__ = ["Scheduling", "System", "load_system"]


class Scheduling(BaseModel):
    """How a rank issues ready nodes onto its streams.

    ``compute_streams``/``comm_streams``/``cpu_streams`` bound how many GPU compute, GPU
    communication (collectives, sends) and CPU operations run at once on a rank; receives and
    memory operations take no slot. Ready nodes issue in ascending node id (``node_id``, as
    ASTRA-sim does) or in file order (``file``). ``min_op_ns`` is the floor of any compute
    duration (ASTRA-sim charges 1 ns for a zero-duration node). ``overlap_comm`` False makes a
    rank's communication wait for its compute stream to drain and block it meanwhile.
    ``measured_comm`` replays the recorded durations of communication nodes (converted traces)
    instead of costing them on the network. ``comm_stream_per_kind`` gives every group kind
    (a collective's ``stream`` attribute: ``tp``, ``dp_cp``...; ``pp`` for sends) its own
    ``comm_streams`` slots, as NCCL communicators of different groups run on their own CUDA
    streams: a pipeline send does not queue behind a data-parallel gradient reduction.
    Collectives without a ``stream`` attribute share one set of slots either way.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    compute_streams: int = Field(1, ge=1, le=64)
    comm_streams: int = Field(1, ge=1, le=64)
    cpu_streams: int = Field(1, ge=1, le=64)
    issue_order: Literal["node_id", "file"] = "node_id"
    min_op_ns: float = Field(0.0, ge=0.0)
    overlap_comm: bool = True
    measured_comm: bool = False
    comm_stream_per_kind: bool = True


class System(BaseModel):
    """A cluster: device, network, collective algorithms and cost model, scheduling knobs.

    ``algorithms`` maps an operation (``all_reduce``, ``all_gather``...) to one algorithm name
    or one per network dimension (``["ring", "direct"]``), like ASTRA-sim's
    ``*-implementation``; ``cost_model`` is ``analytical`` (alpha-beta), ``congestion``
    (link-level), ``nccl`` (bus-bandwidth model of real NCCL) or ``hybrid`` (NCCL's costs for
    groups that cross nodes, alpha-beta inside a node). ``duration_scale`` rescales
    measured ``duration_micros`` (e.g. to a faster device). The compute precision is not
    the system's: it is the workload's (``dtype`` in an ET's metadata, the plan's for a
    generated one), so that a plan and a system cannot disagree. ``compression`` (AdaComp or
    ScaleCom) replaces the data-parallel gradient all-reduces and reduce-scatters (group
    kinds ``dp``, ``dp_cp``, ``edp``) by their compressed communication pattern and compute
    overhead.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    name: str = "system"
    device: str | DeviceSpec = Field(
        "h100-sxm", description="device preset name, device file, or DeviceSpec"
    )
    network: str = "ring:8@50/0.5"
    cost_model: Literal["analytical", "congestion", "nccl", "hybrid"] = "analytical"
    algorithms: dict[str, str | list[str]] = Field(default_factory=dict)
    collective: SystemConfig = Field(default_factory=SystemConfig)
    scheduling: Scheduling = Field(default_factory=Scheduling)
    duration_scale: float = Field(1.0, gt=0.0)
    host_memory_bandwidth_gbps: float = Field(
        50.0, gt=0.0, description="remote/host memory nodes (MEM_LOAD/MEM_STORE)"
    )
    compression: CompressionSpec | None = Field(
        None, description="gradient compression of data-parallel gradient collectives"
    )
    _topology: topology.Topology | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _no_dtype(cls, data: Any) -> Any:
        # The precision used to live here too; two copies made a plan's fp8 a no-op.
        if isinstance(data, dict) and "dtype" in data:
            raise ValueError(
                f"dtype={data['dtype']!r}: a System has no precision; it is the workload's "
                "(ParallelPlan.dtype for a generated one, the ET metadata's 'dtype' otherwise)"
            )
        return data

    @classmethod
    def with_topology(cls, topo: topology.Topology, **fields: Any) -> System:
        """A system over a ready ``Topology`` object (its name stands in for ``network``)."""
        system = cls(network=fields.pop("network", topo.name), **fields)
        system._topology = topo
        return system

    @cached_property
    def topology(self) -> topology.Topology:
        """The network as a ``topology.Topology`` (built once from ``network``)."""
        if self._topology is not None:
            return self._topology
        return topology.load_network(self.network)

    @cached_property
    def device_spec(self) -> DeviceSpec:
        """The ``DeviceSpec`` that ``device`` names, points to or is."""
        return load_device(self.device)

    def algorithm_for(self, op: str) -> str | list[str] | None:
        """Algorithm(s) configured for an operation, or None for the cost model's default."""
        return self.algorithms.get(op)

    @classmethod
    def from_astra(
        cls, network_yml: str | Path, system_json: str | Path | None = None, **fields: Any
    ) -> System:
        """A system from ASTRA-sim's network YAML and (optional) system JSON, as they are.

        The scheduling follows ASTRA-sim: one compute, one communication and one CPU op in
        flight per rank, issue by ascending node id, 1 ns for zero-duration compute.
        """
        topo = topology.read_astra_network(network_yml)
        collective = read_astra_system(system_json) if system_json else SystemConfig.astra_default()
        algorithms: dict[str, str | list[str]] = {
            op: list(names) for op, names in collective.algorithms.items()
        }
        scheduling = Scheduling(issue_order="node_id", min_op_ns=1.0, comm_stream_per_kind=False)
        return cls.with_topology(
            topo,
            name=fields.pop("name", Path(network_yml).stem),
            network=str(network_yml),
            collective=collective,
            algorithms=algorithms,
            scheduling=scheduling,
            **fields,
        )


def load_system(path: str | Path) -> System:
    """Read a ``System`` from a YAML or JSON file; errors name the field and the value."""
    return load_model_file(path, System, SystemConfigError, "System")
