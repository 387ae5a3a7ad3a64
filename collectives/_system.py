"""System-layer settings the cost models honour, and a reader of ASTRA-sim's system JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ._errors import ConfigError
from ._nccl_params import NcclParams

__all__ = ["SystemConfig", "read_astra_system"]


class SystemConfig(BaseModel):
    """How endpoints run a collective, independent of the network.

    ``endpoint_delay_ns`` is paid once when a rank starts a phase and once per message it
    handles; ``local_mem_bw_gbps`` prices a reduction at three passes over the data (read two
    operands, write one; ``None`` makes reductions free); the buffer is cut into
    ``dataset_splits`` chunks, of which ``active_chunks_per_dimension`` run at once per phase.
    ``astra_compatible`` reproduces ASTRA-sim's own bookkeeping where it differs from the
    textbook algorithm (see the algorithm docstrings). ``algorithms`` maps an operation to
    the algorithm per dimension, as ASTRA-sim's ``*-implementation`` keys do.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    endpoint_delay_ns: float = Field(0.0, ge=0.0)
    local_mem_bw_gbps: float | None = Field(None, gt=0.0)
    dataset_splits: int = Field(1, ge=1, le=1 << 16)
    active_chunks_per_dimension: int = Field(1, ge=1, le=1 << 16)
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
