"""``CompressionSpec``: which gradient compressor a data-parallel sync uses, and its ratios."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ._errors import CollectiveError

__all__ = ["METHOD_DEFAULTS", "CompressionError", "CompressionSpec"]


class CompressionError(CollectiveError):
    """A compression setting out of range, or a compressor fed arrays it cannot take."""


#: Per-method defaults: compression ratio when none is configured, and memory passes over the
#: dense gradient on the critical path (METHODS.md section 2: AdaComp about 4-6 streaming
#: passes; ScaleCom's leader accumulates and runs a chunk-wise top-k, about 3 + 2-4 passes).
METHOD_DEFAULTS: dict[str, dict[str, float]] = {
    "adacomp": {"ratio": 40.0, "passes": 5.0},
    "scalecom": {"ratio": 100.0, "passes": 5.0},
}


class CompressionSpec(BaseModel):
    """Gradient compression applied to data-parallel gradient collectives.

    ``ratio`` is the compression ratio as the papers report it: AdaComp's uncompressed bytes
    over sent bytes (values *and* indices, about 40x for convolutions and 200x for
    fully-connected and recurrent layers), ScaleCom's gradient elements over selected
    elements ``d / k`` (65-400x; its indices travel once, from the leader). ``layer_ratios``
    overrides it per layer type (``conv``, ``fc``, ``lstm``, ``attention``...), for instance
    from ``calibrate_compression`` run on real gradients. ``dense_value_bytes`` is the element
    size of the dense collective (4: gradients are reduced in fp32), ``value_bytes`` and
    ``index_bytes`` those of ScaleCom's values and indices. The compressor's own cost is
    ``passes`` memory-bound passes over the dense gradient at ``memory_bandwidth_gbps`` (the
    device's HBM; ``None`` leaves it to the caller) plus ``launch_overhead_us``. With
    ``dense_fallback`` a sync that would not beat the dense collective runs dense.

    >>> CompressionSpec(method="adacomp", layer_ratios={"fc": 200}).ratio_for("fc")
    200.0
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["adacomp", "scalecom"]
    ratio: float | None = Field(None, gt=1.0, le=1e6)
    layer_ratios: dict[str, float] = Field(default_factory=dict)
    dense_value_bytes: float = Field(4.0, gt=0.0, le=16.0)
    value_bytes: float = Field(4.0, gt=0.0, le=16.0)
    index_bytes: float = Field(4.0, gt=0.0, le=16.0)
    passes: float | None = Field(None, ge=0.0, le=100.0)
    memory_bandwidth_gbps: float | None = Field(None, gt=0.0)
    launch_overhead_us: float = Field(0.0, ge=0.0)
    dense_fallback: bool = True

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"]) or "value"
            raise CompressionError(
                f"CompressionSpec.{field}: {err['msg']} (got {err.get('input')!r})"
            ) from None

    @field_validator("method", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("layer_ratios")
    @classmethod
    def _ratios_in_range(cls, value: dict[str, float]) -> dict[str, float]:
        for name, ratio in value.items():
            if not 1.0 < ratio <= 1e6:
                raise ValueError(f"ratio of layer type {name!r} must be in (1, 1e6], got {ratio}")
        return {name.lower(): float(r) for name, r in value.items()}

    def ratio_for(self, layer_type: str | None = None) -> float:
        """The ratio for ``layer_type``: its own, else ``ratio``, else the method default."""
        if layer_type is not None and layer_type.lower() in self.layer_ratios:
            return self.layer_ratios[layer_type.lower()]
        if self.ratio is not None:
            return self.ratio
        return METHOD_DEFAULTS[self.method]["ratio"]

    @property
    def effective_passes(self) -> float:
        """Memory passes over the dense gradient the compressor costs (configured or default)."""
        return self.passes if self.passes is not None else METHOD_DEFAULTS[self.method]["passes"]
