"""Measured GEMM and attention throughput on grids of shapes, interpolated for the device model.

A ``GemmMeasurement`` holds the TFLOP/s one device reached on every (m, n, k) of a rectilinear
grid; an ``AttentionMeasurement`` the forward and backward TFLOP/s of fused causal attention on
every (sequence length, head dimension) of one (``models.measure_gemm`` and
``models.measure_attention`` record them with PyTorch on a GPU). Between grid points a rate is
interpolated multilinearly in log2 of each dimension, because efficiency changes with the
order of magnitude of a dimension (tile and wave quantization), not with its size. Above the
grid a dimension keeps the largest measured rate; below it the work takes the time of the
smallest measured size (its tiles are padded to that size), so the rate falls in proportion.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

__all__ = ["AttentionMeasurement", "AttentionPoint", "GemmMeasurement", "GemmPoint"]

#: (m, n, k, tflops): an (m x k) @ (k x n) product and the dense TFLOP/s it reached.
GemmPoint = tuple[int, int, int, float]
#: (seq_len, head_dim, fwd_tflops, bwd_tflops) of causal fused attention, on executed FLOPs.
AttentionPoint = tuple[int, int, float, float]

MeasuredDType = Literal["fp32", "tf32", "bf16", "fp16", "fp8"]


class _LogGrid:
    """Rates on a full rectilinear grid, interpolated multilinearly in log2 of each axis."""

    def __init__(self, names: Sequence[str], rows: Sequence[tuple[tuple[int, ...], float]]):
        rates: dict[tuple[int, ...], float] = {}
        for shape, rate in rows:
            where = f"point {shape}"
            if min(shape) < 1:
                raise ValueError(f"{where}: every dimension must be at least 1")
            if not (rate > 0 and math.isfinite(rate)):
                raise ValueError(f"{where}: rate {rate!r} must be positive and finite")
            if shape in rates:
                raise ValueError(f"{where} is measured twice")
            rates[shape] = float(rate)
        self.axes = tuple(tuple(sorted({s[i] for s in rates})) for i in range(len(names)))
        for shape in itertools.product(*self.axes):
            if shape not in rates:
                grid = " x ".join(f"{n}={list(a)}" for n, a in zip(names, self.axes, strict=True))
                raise ValueError(f"point {shape} is missing: the points must cover {grid}")
        self.rates = rates

    def __eq__(self, other: object) -> bool:
        # Models holding a grid compare equal when their grids do (pydantic compares private
        # attributes too).
        return isinstance(other, _LogGrid) and self.rates == other.rates

    def at(self, query: Sequence[int]) -> float:
        """Interpolated rate at ``query`` (clamped above the grid, padded below it)."""
        scale = 1.0
        brackets = []
        for dim, axis in zip(query, self.axes, strict=True):
            dim = max(int(dim), 1)
            if dim < axis[0]:
                # Padded to the smallest measured size: same time, fewer useful FLOPs.
                scale *= dim / axis[0]
            brackets.append(_bracket(min(max(dim, axis[0]), axis[-1]), axis))
        rate = 0.0
        for corner in itertools.product(*brackets):
            weight = math.prod(w for _, w in corner)
            rate += weight * self.rates[tuple(v for v, _ in corner)]
        return rate * scale


def _bracket(dim: int, axis: tuple[int, ...]) -> list[tuple[int, float]]:
    """Grid values around ``dim`` (within the axis) and their log2-linear weights."""
    hi = bisect.bisect_left(axis, dim)
    if axis[hi] == dim:
        return [(dim, 1.0)]
    lo_v, hi_v = axis[hi - 1], axis[hi]
    t = (math.log2(dim) - math.log2(lo_v)) / (math.log2(hi_v) - math.log2(lo_v))
    return [(lo_v, 1.0 - t), (hi_v, t)]


class GemmMeasurement(BaseModel):
    """Achieved GEMM TFLOP/s measured on a full (m, n, k) grid for one dtype."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dtype: MeasuredDType
    points: tuple[GemmPoint, ...] = Field(min_length=1, description="(m, n, k, tflops) rows")
    source: str = Field("", description="how, where and when it was measured")
    _grid: _LogGrid = PrivateAttr()

    @model_validator(mode="after")
    def _check_grid(self) -> GemmMeasurement:
        self._grid = _LogGrid("mnk", [((m, n, k), r) for m, n, k, r in self.points])
        return self

    @property
    def axes(self) -> tuple[tuple[int, ...], ...]:
        """The grid's m, n and k values, ascending."""
        return self._grid.axes

    def tflops(self, m: int, n: int, k: int) -> float:
        """Interpolated TFLOP/s of an (m x k) @ (k x n) GEMM."""
        return self._grid.at((m, n, k))


class AttentionMeasurement(BaseModel):
    """Fused causal attention TFLOP/s, forward and backward, on a (seq_len, head_dim) grid.

    Rates count the FLOPs the kernel executes: half of ``4 s^2 d`` per head forward (the
    causal mask skips the upper triangle) and 2.5 times that backward.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    dtype: MeasuredDType
    points: tuple[AttentionPoint, ...] = Field(
        min_length=1, description="(seq_len, head_dim, fwd_tflops, bwd_tflops) rows"
    )
    source: str = Field("", description="how, where and when it was measured")
    _fwd: _LogGrid = PrivateAttr()
    _bwd: _LogGrid = PrivateAttr()

    @model_validator(mode="after")
    def _check_grid(self) -> AttentionMeasurement:
        names = ("seq_len", "head_dim")
        self._fwd = _LogGrid(names, [((s, d), f) for s, d, f, _ in self.points])
        self._bwd = _LogGrid(names, [((s, d), b) for s, d, _, b in self.points])
        return self

    def tflops(self, seq_len: int, head_dim: int, *, backward: bool = False) -> float:
        """Interpolated TFLOP/s of the forward (or backward) kernel."""
        return (self._bwd if backward else self._fwd).at((seq_len, head_dim))
