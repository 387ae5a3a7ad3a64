"""Measured devices: the recorded GEMM and attention tables as a ``DeviceSpec``.

``measure_gemm`` and ``measure_attention`` record a table on this machine's GPU with PyTorch
(``models.record``, which also runs alone as a script where the package's dependencies are
missing) and return it as a ``GemmMeasurement`` / ``AttentionMeasurement``;
``measured_device`` puts tables into a copy of a preset; ``tables_from_raw`` reads what the
script wrote.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from trainsim.models._device import DeviceSpec, EfficiencyModel, load_device
from trainsim.models._errors import ModelsError
from trainsim.models._measured import AttentionMeasurement, GemmMeasurement
from trainsim.models.record import (
    DEFAULT_ATTENTION_HEAD_DIMS,
    DEFAULT_ATTENTION_SEQ_LENS,
    DEFAULT_GEMM_DIMS,
    RecordError,
    record_attention,
    record_gemm,
)

__all__ = [
    "DEFAULT_ATTENTION_HEAD_DIMS",
    "DEFAULT_ATTENTION_SEQ_LENS",
    "DEFAULT_GEMM_DIMS",
    "measure_attention",
    "measure_gemm",
    "measured_device",
    "tables_from_raw",
]


def measure_gemm(dims: Sequence[int] = DEFAULT_GEMM_DIMS, **timing: Any) -> GemmMeasurement:
    """Time an (m x k) @ (k x n) product for every m, n, k in ``dims`` (keyword arguments:
    ``dtype``, ``device``, ``warmup``, ``repeats``, ``trials``, ``progress``; see
    ``models.record.record_gemm``)."""
    try:
        return GemmMeasurement.model_validate(record_gemm(dims, **timing))
    except RecordError as exc:
        raise ModelsError(str(exc)) from None


def measure_attention(
    seq_lens: Sequence[int] = DEFAULT_ATTENTION_SEQ_LENS,
    head_dims: Sequence[int] = DEFAULT_ATTENTION_HEAD_DIMS,
    **timing: Any,
) -> AttentionMeasurement:
    """Time causal fused attention forward and backward on every (sequence length, head dim)
    (keyword arguments as ``models.record.record_attention``)."""
    try:
        return AttentionMeasurement.model_validate(record_attention(seq_lens, head_dims, **timing))
    except RecordError as exc:
        raise ModelsError(str(exc)) from None


def tables_from_raw(
    raw: Mapping[str, Any],
) -> list[GemmMeasurement | AttentionMeasurement]:
    """The tables of a recording (``gemm_measured`` and ``attention_measured`` lists)."""
    unknown = sorted(set(raw) - {"gemm_measured", "attention_measured"})
    if unknown:
        raise ModelsError(f"recording has unknown key {unknown[0]!r}")
    tables: list[GemmMeasurement | AttentionMeasurement] = []
    for key, kind in (
        ("gemm_measured", GemmMeasurement),
        ("attention_measured", AttentionMeasurement),
    ):
        for i, table in enumerate(raw.get(key, [])):
            try:
                tables.append(kind.model_validate(table))
            except ValidationError as exc:
                err = exc.errors()[0]
                where = ".".join(str(p) for p in err["loc"])
                raise ModelsError(f"recording {key}[{i}] {where}: {err['msg']}") from None
    if not tables:
        raise ModelsError("recording holds no table")
    return tables


def measured_device(
    base: str | DeviceSpec, *tables: GemmMeasurement | AttentionMeasurement
) -> DeviceSpec:
    """A copy of ``base`` (preset, device file or spec) whose GEMMs and fused attention cost
    the measured rates; a table replaces one of the same kind and dtype ``base`` has."""
    spec = load_device(base)
    fields: dict[str, object] = spec.efficiency.model_dump()
    for field, kind, old in (
        ("gemm_measured", GemmMeasurement, spec.efficiency.gemm_measured),
        ("attention_measured", AttentionMeasurement, spec.efficiency.attention_measured),
    ):
        new = [t for t in tables if isinstance(t, kind)]
        kept = [t for t in old if t.dtype not in {n.dtype for n in new}]
        fields[field] = [t.model_dump() for t in (*kept, *new)]
    # Validated afresh: at most one table per kind and dtype.
    return spec.model_copy(update={"efficiency": EfficiencyModel.model_validate(fields)})
