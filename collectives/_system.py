"""System-layer settings the cost models honour, and a reader of ASTRA-sim's system JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ._errors import ConfigError
from ._nccl_params import NcclParams
from ._streams import SchedulingPolicy

__all__ = ["SystemConfig", "read_astra_system"]


class SystemConfig(BaseModel):
    """How endpoints run a collective, independent of the network.

    ``endpoint_delay_ns`` is paid once when a rank starts a phase and once per message it
    handles; ``local_mem_bw_gbps`` prices a reduction at three passes over the data (read two
    operands, write one; ``None`` makes reductions free); the buffer is cut into
    ``dataset_splits`` chunks, of which ``active_chunks_per_dimension`` run at once in each
    dimension's queue, waiting there in ``scheduling_policy`` order (see ``_streams``).
    ``astra_compatible`` reproduces ASTRA-sim's own bookkeeping where it differs from the
    textbook algorithm (see the algorithm docstrings). ``algorithms`` maps an operation to
    the algorithm per dimension, as ASTRA-sim's ``*-implementation`` keys do.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    endpoint_delay_ns: float = Field(0.0, ge=0.0)
    local_mem_bw_gbps: float | None = Field(None, gt=0.0)
    dataset_splits: int = Field(1, ge=1, le=1 << 16)
    active_chunks_per_dimension: int = Field(1, ge=1, le=1 << 16)
    scheduling_policy: SchedulingPolicy = "LIFO"
    astra_compatible: bool = False
    algorithms: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    nccl: NcclParams | None = Field(
        None, description="NCCL model figures of this cluster (None: NVLink and InfiniBand)"
    )

    @classmethod
    def astra_default(cls) -> SystemConfig:
        """The settings of ASTRA-sim's example system files (endpoint 10 ns, 4 splits...)."""
        return cls(
            endpoint_delay_ns=10.0,
            local_mem_bw_gbps=1600.0,
            dataset_splits=4,
            active_chunks_per_dimension=1,
            astra_compatible=True,
        )

    @classmethod
    def from_astra(cls, data: dict[str, Any], *, source: str = "<system>") -> SystemConfig:
        """Read ASTRA-sim system-configuration content; keys it does not model are ignored."""
        mapping = {
            "endpoint-delay": "endpoint_delay_ns",
            "local-mem-bw": "local_mem_bw_gbps",
            "preferred-dataset-splits": "dataset_splits",
            "active-chunks-per-dimension": "active_chunks_per_dimension",
            "scheduling-policy": "scheduling_policy",
        }
        values: dict[str, Any] = {"astra_compatible": True}
        for key, field in mapping.items():
            if key in data:
                values[field] = data[key]
        algos: dict[str, tuple[str, ...]] = {}
        for key, value in data.items():
            if key.endswith("-implementation") and isinstance(value, list):
                op = key.removesuffix("-implementation").replace("-", "_")
                algos[op] = tuple(str(v) for v in value)
        values["algorithms"] = algos
        try:
            return cls(**values)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"])
            raise ConfigError(
                f"{source}: {field}: {err['msg']} (got {err.get('input')!r})"
            ) from None

    def streams(self, size_bytes: float, total_npus: int, *, gather: bool) -> tuple[int, float]:
        """How many streams a collective of ``size_bytes`` per rank is cut into, and their size.

        The textbook split is ``dataset_splits`` equal chunks. ASTRA-sim
        (``Sys::determine_chunk_size``, ``Sys::generate_collective``) cuts whole bytes: chunks
        of ``size // splits``, as many as it takes to cover the size (each a full chunk), and
        never below one byte per NPU of the system except for all-gather, so that later
        phases can still divide a chunk.
        """
        splits = self.dataset_splits
        if size_bytes <= 0:
            return splits, 0.0
        if not self.astra_compatible:
            return splits, size_bytes / splits
        size = int(size_bytes)
        chunk = size // splits
        if not gather and total_npus > chunk:
            chunk = total_npus
            size = splits * chunk
        chunk = max(chunk, 1)
        return math.ceil(size / chunk), float(chunk)

    def reduce_time_ns(self, compute_bytes: float) -> float:
        """Time to reduce ``compute_bytes`` in local memory."""
        if self.local_mem_bw_gbps is None:
            return 0.0
        return 3.0 * compute_bytes / self.local_mem_bw_gbps


def read_astra_system(path: str | Path) -> SystemConfig:
    """Read an ASTRA-sim system JSON file as it is."""
    source = str(path)
    try:
        data = json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{source}: not valid JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a JSON object")
    return SystemConfig.from_astra(data, source=source)
