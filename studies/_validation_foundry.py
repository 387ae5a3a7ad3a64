"""The llm-foundry source of the validation study: MosaicML's published MPT training benchmarks.

``../shared/data/ground_truth/llm_foundry.csv`` holds 216 runs from llm-foundry's
``scripts/train/benchmarking/README.md``: MPT 125M-70B trained with Composer's FSDP on 8-512
A100 or H100 GPUs. Each row states the model shape (from the MPT yaml it names), the sequence
length, micro-batch, gradient accumulation and global batch, the GPU count and type, the
precision, the FSDP sharding strategy and whether activation checkpointing was on; it gives
throughput (tokens/s per GPU), MFU, HFU and model TFLOP/s per GPU as published.

Each run is predicted from those columns alone. What a row does not state takes one default
for every row of the source:

* MPT as its yamls build it: GPT-style layers with a plain (not gated) MLP of ``ffn`` =
  4 x d_model, learned absolute positions (``alibi=False``, ``learned_pos_emb=True``), the
  output layer tied to the input embedding (MPT has no separate ``lm_head``; its logits are
  ``F.linear(x, wte.weight)``), no biases and bias-free LayerNorms (``no_bias=True``), no
  dropout (the pretrain yamls set every ``*_pdrop`` to 0), multi-head attention (an empty
  ``kv_heads``: ``attn_type=multihead_attention``) run by FlashAttention (``attn_impl=flash``);
* FSDP ``FULL_SHARD`` is ZeRO stage 3 and ``SHARD_GRAD_OP`` stage 2, over every GPU (pure data
  parallelism, ``dp = gpus``); FSDP's reduce-scatter overlaps the backward pass and its
  prefetch gathers the next layer's weights beside the current layer's compute (the plan's
  defaults);
* activation checkpointing is full recomputation of each layer in the backward pass;
* ``amp_bf16`` and ``bf16`` (the A100 tables' spelling) compute in BF16; ``amp_fp8`` runs the
  layers' GEMMs in FP8 through Transformer Engine with its default delayed scaling;
* the A100 tables state a 1600 Gb/s RoCE network per node (200 Gb/s per GPU), which is the
  ``dgx-a100`` cluster every A100 preset defaults to; the H100 tables state no network, so they
  take the ``h100-sxm`` default (``dgx-h100``, 400 Gb/s per GPU). Collectives use the NCCL
  model, as for every other source.

Not modelled, and so part of the reported error: the notes give each run's Composer FSDP
``MP Mode``, ``PURE`` (the A100 40 GB table and 2 A100 80 GB runs) or ``DEFAULT`` (the H100
tables and the other A100 80 GB runs), which differ in FSDP's gradient-reduction dtype
(``DEFAULT`` reduces in fp32, doubling the reduce-scatter bytes); ``ParallelPlan`` has no
reduction-dtype switch, so every row reduces in the compute dtype.

Metrics use MPT's own FLOP convention on both sides (the README's formula, stated in the
data notes): model FLOPs per token are ``6 N + 12 L d T`` with ``N`` the parameter count the
row states (llm-foundry's ``n_params``, which includes the embedding and the learned
positions), ``L`` layers, ``d`` d_model and ``T`` the sequence length; MFU divides them by the
peak of the run's precision (FP8 rows against the FP8 peak); HFU counts one more forward,
``8 N + 16 L d T``, when activation checkpointing is on. Our MFU, HFU and model TFLOP/s are
computed with that formula from our predicted throughput, not with trainsim's own FLOP count,
so they differ from the published figures exactly as the throughput does (up to the
published rounding): they confirm the convention, they add no independent evidence.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from trainsim.engine import StepResult, cluster_system, predict
from trainsim.models import DeviceSpec, ModelSpec, ParallelPlan, load_device, model_from_mapping

__all__ = [
    "FOUNDRY_FILE",
    "FOUNDRY_SOURCE",
    "FoundryPrediction",
    "foundry_device",
    "foundry_model",
    "foundry_plan",
    "measured",
    "mpt_flops_per_token",
    "predict_foundry_row",
    "read_foundry_rows",
    "row_config",
    "row_groups",
    "row_label",
    "size_group",
]

#: The table's file name; it lies beside ``published.csv`` in ``ground_truth/``.
FOUNDRY_FILE = "llm_foundry.csv"
#: Label of this source in the validation report.
FOUNDRY_SOURCE = "llm-foundry MPT"

_DEVICES = {"a100_40gb": "a100-40gb", "a100_80gb": "a100-80gb", "h100_80gb": "h100-sxm"}
_DTYPES: dict[str, Literal["bf16", "fp8"]] = {"amp_bf16": "bf16", "bf16": "bf16", "amp_fp8": "fp8"}
_ZERO_STAGES = {"FULL_SHARD": 3, "SHARD_GRAD_OP": 2}
#: Columns whose values decide a prediction: rows equal on them share one.
_PREDICTION_KEY = (
    "layers",
    "hidden",
    "heads",
    "kv_heads",
    "ffn",
    "seq_len",
    "vocab",
    "global_batch",
    "micro_batch",
    "gpus",
    "gpu_type",
    "precision",
    "sharding",
    "activation_checkpointing",
)
#: Columns the study reads (a table without one is refused).
_COLUMNS = frozenset(
    (
        *_PREDICTION_KEY,
        "model",
        "params",
        "cpu_offload",
        "tokens_per_s_per_gpu",
        "mfu_pct",
        "hfu_pct",
        "model_tflops_per_gpu",
    )
)


def read_foundry_rows(path: str | Path) -> list[dict[str, str]]:
    """The rows of an llm-foundry benchmark table, checked for the columns the study reads."""
    source = Path(path)
    with open(source, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = sorted(_COLUMNS - set(reader.fieldnames or ()))
        if missing:
            raise ValueError(f"{source}: not an llm-foundry benchmark table (no {missing})")
        return list(reader)


def _true(text: str) -> bool:
    return text.strip().lower() in ("true", "1", "yes")


def foundry_model(row: Mapping[str, str]) -> ModelSpec:
    """The MPT model a row trains, as its yaml builds it (see the module notes)."""
    kv_heads = row["kv_heads"].strip()
    return model_from_mapping(
        {
            "name": row["model"].strip().lower(),
            "num_layers": int(row["layers"]),
            "hidden_size": int(row["hidden"]),
            "num_heads": int(row["heads"]),
            # An empty cell is MPT's default attn_type=multihead_attention.
            "num_kv_heads": int(kv_heads) if kv_heads else None,
            "ffn_hidden_size": int(row["ffn"]),
            "gated_mlp": False,
            "vocab_size": int(row["vocab"]),
            "seq_len": int(row["seq_len"]),
            "tied_embeddings": True,
            "learned_position_embeddings": True,
            "dropout": False,
            "bias": False,
        },
        source=f"llm-foundry row {row['model']} seq {row['seq_len']}",
    )


def foundry_plan(row: Mapping[str, str]) -> ParallelPlan:
    """The FSDP data-parallel plan of a row (ValueError for a sharding or precision unknown)."""
    sharding = row["sharding"].strip()
    precision = row["precision"].strip()
    if sharding not in _ZERO_STAGES:
        raise ValueError(f"sharding {sharding!r} is not one of {sorted(_ZERO_STAGES)}")
    if precision not in _DTYPES:
        raise ValueError(f"precision {precision!r} is not one of {sorted(_DTYPES)}")
    return ParallelPlan(
        dp=int(row["gpus"]),
        zero_stage=_ZERO_STAGES[sharding],
        micro_batch_size=int(row["micro_batch"]),
        global_batch_size=int(row["global_batch"]),
        recompute="full" if _true(row["activation_checkpointing"]) else "none",
        attention="flash",
        dtype=_DTYPES[precision],
    )


def foundry_device(row: Mapping[str, str]) -> str | None:
    """The device preset of a row's GPU type (None when there is none)."""
    return _DEVICES.get(row["gpu_type"].strip().lower())


def mpt_flops_per_token(row: Mapping[str, str], *, hardware: bool = False) -> float:
    """MPT's FLOPs per trained token: ``6 N + 12 L d T``, or ``8 N + 16 L d T`` for HFU with
    activation checkpointing (one more forward). ``N`` is the row's stated parameter count."""
    params = float(row["params"])
    attention = float(row["layers"]) * float(row["hidden"]) * float(row["seq_len"])
    passes = 4.0 if hardware and _true(row["activation_checkpointing"]) else 3.0
    return passes * (2.0 * params + 4.0 * attention)


class FoundryPrediction:
    """Our throughput for one run and its MFU, HFU and model TFLOP/s in MPT's convention."""

    def __init__(self, row: Mapping[str, str], result: StepResult, peak_flops: float) -> None:
        metrics = result.metrics
        assert metrics is not None  # predict() always attaches the step's metrics
        self.result = result
        #: Predicted tokens per second per GPU.
        self.tokens_per_s_per_gpu = metrics.tokens_per_s(result.step_time_s) / metrics.gpus
        flops = mpt_flops_per_token(row) * self.tokens_per_s_per_gpu
        hardware = mpt_flops_per_token(row, hardware=True) * self.tokens_per_s_per_gpu
        #: Model TFLOP/s per GPU, MPT's count.
        self.model_tflops_per_gpu = flops / 1e12
        #: MFU in percent, MPT's count over the peak of the run's precision.
        self.mfu_pct = 100.0 * flops / peak_flops
        #: HFU in percent, MPT's count (one more forward with checkpointing).
        self.hfu_pct = 100.0 * hardware / peak_flops

    def metrics(self) -> dict[str, float]:
        """Metric column name -> our value."""
        return {
            "tokens_per_s_per_gpu": self.tokens_per_s_per_gpu,
            "mfu_pct": self.mfu_pct,
            "hfu_pct": self.hfu_pct,
            "model_tflops_per_gpu": self.model_tflops_per_gpu,
        }


def predict_foundry_row(
    row: Mapping[str, str],
    *,
    cost_model: str = "nccl",
    devices: Mapping[str, DeviceSpec] | None = None,
    cache: dict[tuple[str, ...], FoundryPrediction] | None = None,
) -> FoundryPrediction | str:
    """Predict one run, or say why it cannot be predicted from what it states.

    ``devices`` replace presets of the same name; ``cache`` holds predictions by the columns
    that decide them, so repeated configurations are simulated once.
    """
    if _true(row["cpu_offload"]):
        return "CPU offload is not modelled"
    device = foundry_device(row)
    if device is None:
        return f"no device preset for {row['gpu_type']!r}"
    key = (*(row[k].strip() for k in _PREDICTION_KEY), row["params"].strip(), cost_model)
    if cache is not None and key in cache:
        return cache[key]
    try:
        model, plan = foundry_model(row), foundry_plan(row)
    except ValueError as exc:  # InvalidModelError and InvalidPlanError are ValueErrors too
        return str(exc)
    spec: str | DeviceSpec = (devices or {}).get(device, device)
    system = cluster_system(spec, plan.num_gpus, cost_model=cost_model)
    peak = load_device(spec).peak_flops(plan.dtype)
    prediction = FoundryPrediction(row, predict(model, plan, system), peak)
    if cache is not None:
        cache[key] = prediction
    return prediction


def measured(row: Mapping[str, str], column: str) -> float | None:
    """A published number of a row (None when the cell is empty or not a number)."""
    try:
        value = float(row[column])
    except (KeyError, ValueError):
        return None
    return value if math.isfinite(value) else None


def size_group(params: float) -> str:
    """Model-size bucket for the per-group summary."""
    bounds: tuple[tuple[float, str], ...] = ((1e9, "<1B"), (5e9, "1-5B"), (2e10, "5-20B"))
    return next((label for bound, label in bounds if params < bound), ">=20B")


def row_groups(row: Mapping[str, str]) -> dict[str, str]:
    """The groups a run belongs to in the summary: GPU, precision, sharding, checkpointing, size."""
    return {
        "gpu": row["gpu_type"].strip(),
        "precision": _DTYPES.get(row["precision"].strip(), row["precision"].strip()),
        "sharding": row["sharding"].strip(),
        "checkpointing": "on" if _true(row["activation_checkpointing"]) else "off",
        "size": size_group(float(row["params"])),
    }


def row_label(row: Mapping[str, str]) -> str:
    """Short model column of the report: model, sequence length and micro-batch."""
    return f"{row['model']} s{row['seq_len']} mb{row['micro_batch']}"


def row_config(row: Mapping[str, str]) -> str:
    """The run's configuration in one line, for the worst-rows list."""
    checkpointing = " ckpt" if _true(row["activation_checkpointing"]) else ""
    return (
        f"{row['gpu_type']} {row['precision']} {row['sharding']}{checkpointing} "
        f"gb{row['global_batch']} ga{row.get('grad_accum', '?')}"
    )
