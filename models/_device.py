"""DeviceSpec: an accelerator's peak rates, memory, and the global efficiency model.

Peak dense (non-sparse) FLOP/s per dtype, HBM bandwidth and capacity are the vendors'
datasheet figures: NVIDIA A100 (40/80 GB SXM), H100 SXM, H800 SXM (H100 compute, export
interconnect), H200 SXM, HGX B200, AMD Instinct MI300X.

The efficiency model is one global calibration, never fitted to a published training row:

* A GEMM of shape (m, n, k) achieves ``gemm_peak_fraction * f(m) f(n) f(k)`` of peak, with
  ``f(d) = d / (d + gemm_half_dim)``: small dimensions leave tensor cores idle (tile and wave
  quantization). ``gemm_half_dim = 108`` reproduces the ratio between 1024^3 and 8192^3 bf16
  GEMMs on H100 in a published summary of CUTLASS 3.5 benchmarks (about 0.77; third-party
  mirror of the NVIDIA/cutlass documentation, a lead rather than a measurement of ours).
  ``gemm_peak_fraction`` is set so that an 8192^3 bf16 GEMM reaches 0.80 of peak, and no
  dimension past 8192 raises it (the best of a published H100 SXM shape sweep is 80.3%,
  ``../shared/data/reference/device-measurements/gemm_measurements.csv``): 798 TFLOP/s
  of 989 were measured on an H100 SXM and 788 on an H200 of this workplace (PyTorch, random
  data; see the device library's KINDS.md). The same fraction is used for every NVIDIA part;
  MI300X uses 0.55 (public third-party GEMM measurements of about 700 of 1307 TFLOP/s;
  unverified, treat as a lead).
* Memory-bound work streams at ``memory_fraction = 0.90`` of HBM bandwidth: a device-to-device
  copy moved 3.0 of 3.35 TB/s on the H100 and 4.3 of 4.8 TB/s on the H200 here.
* Fused (flash) attention reaches ``attention_fraction = 0.5`` of peak on the FLOPs it
  executes, forward and backward together: FlashAttention-2 reports 50-73% of peak forward on
  A100 and FlashAttention-3 up to 75% on H100, both lower backward (the papers' abstracts; a
  lead, not a measurement of ours).
* ``models.measured_preset`` gives each preset with tables built from published
  measurements instead (``models._published``): GEMM and attention rates by shape, and a
  measured streaming HBM rate (``memory_measured_gbps``) in place of ``memory_fraction``.
* Time of an operation is the roofline ``max(flops / achieved_flops, bytes / achieved_bw)``;
  a node standing for several operations sums theirs (``models.roofline_time_us``).
* A device file may carry rates measured on the device itself (``measure-device``,
  ``models.measure_gemm`` and ``models.measure_attention``): ``gemm_measured`` and
  ``attention_measured`` tables replace the curve and the attention fraction for their dtype
  (``models.GemmMeasurement``, interpolated in log2 of each dimension).
* An operation that runs beside communication kernels holding ``comm_sms`` of the device's
  ``num_sms`` streaming multiprocessors computes on the rest: its compute time grows by
  ``num_sms / (num_sms - comm_sms)`` (Transformer Engine gives its overlapped GEMMs such a
  margin, ``set_sm_margin``). SM counts are the vendors' (A100 108, H100/H800/H200 132, B200
  148, MI300X 304 compute units).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from trainsim.models._errors import ModelsError, UnknownPresetError
from trainsim.models._measured import AttentionMeasurement, GemmMeasurement

__all__ = [
    "DEVICE_PRESETS",
    "DType",
    "DeviceSpec",
    "EfficiencyModel",
    "device_preset",
    "load_device",
]

DType = Literal["fp32", "tf32", "bf16", "fp16", "fp8"]

_REFERENCE_DIM = 8192

_Table = TypeVar("_Table", GemmMeasurement, AttentionMeasurement)


class EfficiencyModel(BaseModel):
    """Achieved fraction of peak compute and bandwidth as a function of shape and bytes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    gemm_peak_fraction: float = Field(0.80, gt=0.0, le=1.0, description="at 8192^3")
    gemm_half_dim: int = Field(108, ge=0, description="dim where a GEMM dim factor is 0.5")
    vector_fraction: float = Field(
        0.5, gt=0.0, le=1.0, description="fraction of peak for non-GEMM arithmetic"
    )
    memory_fraction: float = Field(0.90, gt=0.0, le=1.0, description="of HBM bandwidth")
    memory_measured_gbps: float | None = Field(
        None,
        gt=0,
        description="measured streaming HBM rate in GB/s; replaces memory_fraction when set",
    )
    memory_source: str = Field("", description="where memory_measured_gbps was measured")
    attention_fraction: float = Field(
        0.5, gt=0.0, le=1.0, description="of peak for fused attention (executed FLOPs)"
    )
    gemm_measured: tuple[GemmMeasurement, ...] = Field(
        (), description="measured GEMM rates by dtype; they replace the curve for their dtype"
    )
    attention_measured: tuple[AttentionMeasurement, ...] = Field(
        (), description="measured fused-attention rates by dtype; they replace the fraction"
    )

    @model_validator(mode="after")
    def _one_table_per_dtype(self) -> EfficiencyModel:
        for field, tables in (
            ("gemm_measured", self.gemm_measured),
            ("attention_measured", self.attention_measured),
        ):
            dtypes = [table.dtype for table in tables]
            for dtype in dtypes:
                if dtypes.count(dtype) > 1:
                    raise ValueError(f"{field} has {dtypes.count(dtype)} tables for {dtype}")
        return self

    def measured_gemm(self, dtype: str) -> GemmMeasurement | None:
        """The measured GEMM table for ``dtype`` (fp16 and bf16 stand in for each other)."""
        return _for_dtype(self.gemm_measured, dtype)

    def measured_attention(self, dtype: str) -> AttentionMeasurement | None:
        """The measured attention table for ``dtype`` (fp16 and bf16 stand in for each other)."""
        return _for_dtype(self.attention_measured, dtype)

    def gemm_fraction(self, m: int, n: int, k: int) -> float:
        """Achieved fraction of peak for an (m x k) @ (k x n) GEMM."""
        half = self.gemm_half_dim
        ref = _REFERENCE_DIM / (_REFERENCE_DIM + half)
        shape = 1.0
        for dim in (m, n, k):
            # Past the reference a dimension gains nothing: the 8192^3 rate is the best
            # measured (a larger GEMM above it would be faster than any published one).
            shape *= min(1.0, (max(dim, 1) / (max(dim, 1) + half)) / ref)
        return self.gemm_peak_fraction * shape


def _for_dtype(tables: tuple[_Table, ...], dtype: str) -> _Table | None:
    """The table measured in ``dtype``, else in its twin (fp16 and bf16 share tensor cores)."""
    if not tables:  # a preset: every roofline asks, so answer without building a mapping
        return None
    by_dtype: dict[str, _Table] = {table.dtype: table for table in tables}
    twin = {"fp16": "bf16", "bf16": "fp16"}.get(dtype, dtype)
    return by_dtype.get(dtype) or by_dtype.get(twin)


#: FP8 recipes any FP8 tensor core runs: per-tensor scales and blockwise scales applied in
#: software around the GEMM (MXFP8's per-32-element scales need Blackwell's hardware).
_SOFTWARE_FP8_RECIPES = ("delayed", "current", "blockwise")


class DeviceSpec(BaseModel):
    """One accelerator: peak dense FLOP/s per dtype, HBM bandwidth and capacity, efficiency."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    peak_tflops: dict[str, float] = Field(description="dense TFLOP/s by dtype")
    hbm_bandwidth_gbps: float = Field(gt=0, description="HBM bandwidth in GB/s (1e9 B/s)")
    memory_gib: float = Field(gt=0, description="HBM capacity in GiB")
    runtime_reserved_gib: float = Field(
        1.0,
        ge=0,
        description="HBM the runtime holds before the first tensor: the CUDA context with "
        "the framework's kernels loaded, cuBLAS/cuDNN workspaces and NCCL's communicator "
        "buffers (NCCL_BUFFSIZE 4 MiB per channel and peer, per communicator). An estimate, "
        "not a measurement: set it from torch.cuda.mem_get_info() on the real machine",
    )
    efficiency: EfficiencyModel = Field(default_factory=EfficiencyModel)
    num_sms: int | None = Field(
        None, ge=1, description="streaming multiprocessors (compute units), for SM margins"
    )
    fp8_recipes: tuple[str, ...] = Field(
        (),
        description="FP8 scaling recipes the tensor cores run (per-tensor 'delayed' and "
        "'current', 'blockwise' scales in software, 'mxfp8' block scales in hardware: "
        "Blackwell only)",
    )

    @model_validator(mode="before")
    @classmethod
    def _default_fp8_recipes(cls, data: Any) -> Any:
        # A device with an FP8 rate runs the recipes that need nothing of the hardware but
        # FP8 tensor cores; device files written before this field keep working.
        if isinstance(data, dict) and "fp8_recipes" not in data:
            peaks = data.get("peak_tflops") or {}
            if "fp8" in peaks:
                return {**data, "fp8_recipes": _SOFTWARE_FP8_RECIPES}
        return data

    def peak_flops(self, dtype: str = "bf16") -> float:
        """Peak dense FLOP/s for ``dtype`` (fp16 and bf16 share the tensor-core rate)."""
        key = "bf16" if dtype == "fp16" else dtype
        try:
            return self.peak_tflops[key] * 1e12
        except KeyError:
            known = ", ".join(sorted(self.peak_tflops))
            raise ModelsError(
                f"dtype={dtype!r} has no peak rate on device {self.name} (known: {known})"
            ) from None

    @property
    def memory_bytes(self) -> int:
        """HBM capacity in bytes."""
        return int(self.memory_gib * 2**30)

    @property
    def usable_memory_gib(self) -> float:
        """HBM left for the training state once the runtime holds its share, in GiB."""
        return max(self.memory_gib - self.runtime_reserved_gib, 0.0)

    def gemm_time_us(self, m: int, n: int, k: int, dtype: str = "bf16") -> float:
        """Roofline time of one GEMM (operands and result read/written once)."""
        flops = 2.0 * m * n * k
        size = 1 if dtype == "fp8" else 4 if dtype in ("fp32", "tf32") else 2
        bytes_moved = size * (m * k + k * n + m * n)
        achieved = self.gemm_flops_per_s(m, n, k, dtype)
        return max(flops / achieved, bytes_moved / self.achieved_bandwidth) * 1e6

    def gemm_flops_per_s(
        self, m: int, n: int, k: int, dtype: str = "bf16", *, batch: float = 1.0
    ) -> float:
        """FLOP/s an (m x k) @ (k x n) GEMM reaches: measured if the device has a table for
        ``dtype`` (``EfficiencyModel.gemm_measured``), else peak times the shape curve.

        ``batch``: independent products of that shape in one kernel (a batched GEMM over
        attention heads, a grouped GEMM over experts). A measured table looks the batch up as
        ``batch`` times the rows (the kernel tiles them alike); the curve ignores it."""
        table = self.efficiency.measured_gemm(dtype)
        if table is not None:
            return table.tflops(max(round(m * batch), m), n, k) * 1e12
        return self.peak_flops(dtype) * self.efficiency.gemm_fraction(m, n, k)

    def attention_flops_per_s(
        self, seq_len: int, head_dim: int, dtype: str = "bf16", *, backward: bool = False
    ) -> float:
        """Executed FLOP/s of fused causal attention over ``seq_len`` keys: measured if the
        device has a table for ``dtype`` (``EfficiencyModel.attention_measured``), else peak
        times ``attention_fraction``."""
        table = self.efficiency.measured_attention(dtype)
        if table is not None:
            return table.tflops(seq_len, head_dim, backward=backward) * 1e12
        return self.peak_flops(dtype) * self.efficiency.attention_fraction

    @property
    def achieved_bandwidth(self) -> float:
        """HBM bytes per second that streaming kernels reach: the measured rate when the
        efficiency model has one (``EfficiencyModel.memory_measured_gbps``), else
        ``memory_fraction`` of the datasheet bandwidth."""
        measured = self.efficiency.memory_measured_gbps
        if measured is not None:
            return measured * 1e9
        return self.hbm_bandwidth_gbps * 1e9 * self.efficiency.memory_fraction

    def op_time_us(
        self,
        flops: float,
        size_bytes: float,
        dtype: str = "bf16",
        *,
        gemm_shape: tuple[int, int, int] | None = None,
        attention: bool = False,
        attention_shape: tuple[int, int] | None = None,
        backward: bool = False,
        comm_sms: int = 0,
    ) -> float:
        """Roofline time of an operation: GEMMs use the shape curve, fused attention its own.

        ``attention_shape``: (key length, head dim) of fused attention, for measured rates
        (``backward`` picks the backward kernel's). ``comm_sms``: SMs that communication
        running beside the operation holds; it computes on the others (no effect on a device
        without ``num_sms``).
        """
        if attention and dtype == "fp8":
            # FP8 recipes (Transformer Engine's default, fp8_dpa off) run fused attention
            # in BF16; only the GEMMs around it take FP8.
            dtype = "bf16"
        if not flops:
            rate = 1.0  # unused: no arithmetic, the bytes decide
        elif gemm_shape is not None:
            m, n, k = gemm_shape
            # FLOPs beyond one product of the shape are a batch of such products.
            batch = flops / (2.0 * m * n * k) if m and n and k else 1.0
            rate = self.gemm_flops_per_s(m, n, k, dtype, batch=batch)
        elif attention and attention_shape is not None:
            rate = self.attention_flops_per_s(*attention_shape, dtype, backward=backward)
        elif attention:
            rate = self.peak_flops(dtype) * self.efficiency.attention_fraction
        else:
            rate = self.peak_flops(dtype) * self.efficiency.gemm_peak_fraction
        if comm_sms and self.num_sms is not None:
            if comm_sms >= self.num_sms:
                raise ModelsError(
                    f"comm_sms={comm_sms} leaves no SM of device {self.name} "
                    f"(num_sms={self.num_sms}) to compute on"
                )
            rate *= (self.num_sms - comm_sms) / self.num_sms
        compute_s = flops / rate if flops else 0.0
        return max(compute_s, size_bytes / self.achieved_bandwidth) * 1e6


_NV = EfficiencyModel()


def _dev(
    name: str,
    fp32: float,
    tf32: float,
    bf16: float,
    fp8: float | None,
    bw: float,
    gib: float,
    sms: int,
    eff: EfficiencyModel = _NV,
    mxfp8: bool = False,
) -> DeviceSpec:
    peaks = {"fp32": fp32, "tf32": tf32, "bf16": bf16}
    extra: dict[str, Any] = {}
    if fp8 is not None:
        peaks["fp8"] = fp8
        if mxfp8:
            extra["fp8_recipes"] = (*_SOFTWARE_FP8_RECIPES, "mxfp8")
    return DeviceSpec(
        name=name,
        peak_tflops=peaks,
        hbm_bandwidth_gbps=bw,
        memory_gib=gib,
        efficiency=eff,
        num_sms=sms,
        **extra,
    )


#: Every device preset by name (datasheet dense peaks; see the module docstring).
DEVICE_PRESETS: Mapping[str, DeviceSpec] = {
    d.name: d
    for d in (
        _dev("a100-40gb", 19.5, 156.0, 312.0, None, 1555.0, 40.0, 108),
        _dev("a100-80gb", 19.5, 156.0, 312.0, None, 2039.0, 80.0, 108),
        _dev("h100-sxm", 67.0, 494.7, 989.4, 1978.9, 3350.0, 80.0, 132),
        _dev("h800", 67.0, 494.7, 989.4, 1978.9, 3350.0, 80.0, 132),
        _dev("h200", 67.0, 494.7, 989.4, 1978.9, 4800.0, 141.0, 132),
        # Blackwell's tensor cores take MXFP8's per-32-element scales (NVIDIA B200 datasheet).
        _dev("b200", 75.0, 1100.0, 2250.0, 4500.0, 8000.0, 180.0, 148, mxfp8=True),
        _dev(
            "mi300x",
            163.4,
            653.7,
            1307.4,
            2614.9,
            5300.0,
            192.0,
            304,
            EfficiencyModel(gemm_peak_fraction=0.55),
        ),
    )
}

_ALIASES = {
    "a100": "a100-80gb",
    "h100": "h100-sxm",
    "h100-80gb": "h100-sxm",
    "a100-80": "a100-80gb",
}


def device_preset(name: str) -> DeviceSpec:
    """Return the device preset called ``name`` (case-insensitive; a few aliases)."""
    key = name.strip().lower().replace("_", "-")
    key = _ALIASES.get(key, key)
    try:
        return DEVICE_PRESETS[key]
    except KeyError:
        known = ", ".join(DEVICE_PRESETS)
        raise UnknownPresetError(f"device={name!r} is not a preset (known: {known})") from None


def load_device(spec: str | Path | Mapping[str, Any] | DeviceSpec) -> DeviceSpec:
    """Resolve a preset name, a YAML/JSON file of DeviceSpec fields, or such a mapping."""
    if isinstance(spec, DeviceSpec):
        return spec
    source = "device"
    if not isinstance(spec, Mapping):
        path = Path(spec)
        if not path.is_file():
            return device_preset(str(spec))
        source, data = str(path), yaml.safe_load(path.read_text())
        if not isinstance(data, Mapping):
            raise ModelsError(f"device file {path} must hold a mapping")
        spec = data
    try:
        return DeviceSpec.model_validate(dict(spec))
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise ModelsError(f"{source}: {loc}={err.get('input')!r}: {err['msg']}") from None
