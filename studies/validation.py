"""Validation against published measurements: predict every row from its stated configuration.

Each row of ``../shared/data/ground_truth/published.csv`` states a model shape, a GPU count and
type, a parallel plan and one measured metric. The study builds the model and plan from the
row alone, predicts the step on the device's built-in cluster with the engine's defaults, and
compares. Settings a row does not state take one documented default for every row, never a
per-row value:

* micro-batch size 1; no virtual pipeline stages; ZeRO off; bf16 when no precision is given
  (fp16 mixed has bf16's peak rate; its optimizer step also unscales the loss-scaled
  gradients);
* sequence parallelism off and no recomputation unless the row says so;
* attention is Megatron-LM's unfused attention (two batched GEMMs around a softmax, the
  ``s x s`` scores in memory) for the 2019-2022 papers, which predate fused attention in
  Megatron-LM, and fused (flash) attention for the Megatron-Core rows; likewise the 2019-2021
  code added each micro-batch's weight gradients to the fp32 main gradients in a separate
  pass (gradient-accumulation fusion came later in 2021), the 2019-2022 code added the QKV
  bias and summed its gradient in kernels of their own, and the 2019-2022 code reduced the
  data-parallel gradients after the whole backward pass (``train_step`` called
  ``allreduce_gradients()`` once ``forward_backward`` returned; overlapping them with the
  backward came with Megatron-Core's ``--overlap-grad-reduce`` in 2023);
* Narayanan et al.'s FLOP count (Eq. 3, recomputation included) is our hardware FLOPs; the
  Megatron-Core rows' "model TFLOP/s" is our model FLOPs;
* GPT models have learned positions, biases, dropout and tied embeddings (as in the papers);
* overlap flags stated in a row's notes are used: ``--tp-comm-overlap`` (Megatron allows it
  only with sequence parallelism, so it implies it; its GEMMs run in Transformer Engine's
  default chunks, see ``models.layer_cost``, and ``engine.predict`` generates such plans at
  op granularity, the one that puts each exchange beside the GEMM it overlaps; the GEMMs beside
  its pipelined and bulk exchanges run on the SMs their 16-SM kernels leave, as Transformer
  Engine 2's ``set_sm_margin`` default reserves them: TE 1.x, of the Megatron-Core r0.8 era,
  ran the same kernels without reserving, and whether the margin over- or understates what
  they cost there is not known) and
  ``--overlap-param-gather`` (it exists only with the distributed optimizer, so it implies
  that);
* sequence parallelism's backward re-gathers each column-parallel GEMM's input beside its
  data gradient and reduce-scatters that gradient beside its weight gradient, as Megatron-LM
  (2022 on) and Transformer Engine do; NCCL's kernels hold 16 SMs while they run (Calculon's
  0.15 of the processor for NVLink traffic);
* collectives are costed by the NCCL model (``collectives.NcclModel``: NCCL's own protocol
  latencies per ring step, 0.78 of NVLink and 0.92 of NIC bandwidth) on the device's built-in
  cluster (``engine.cluster_system``): one global setting for every row. The nccl-tests rows
  run on the A3-Mega preset they name, whose network figures were fitted to those same rows:
  they check the calibration, they do not test it.

``run_validation(devices=...)`` (``trainsim validate --device FILE``) replaces a device preset
by a device file, e.g. one with GEMM and attention rates measured on that GPU
(``trainsim measure-device``): the study then scores the measured device, not the curve.
``device_set="published"`` (``--device-set published``) scores every device on the tables
built from published measurements (``models.measured_preset``) instead of the presets;
device files still replace those of their name.

The llm-foundry table beside it (``ground_truth/llm_foundry.csv``, MosaicML's MPT benchmarks
on FSDP) is a source of its own, with its own documented defaults and MPT's FLOP convention
for MFU: see ``studies._validation_foundry``. Its rows carry MFU, HFU and TFLOP/s as
secondary metrics and groups (GPU, precision, sharding, checkpointing, size) that the report
summarises; every source's summary gives the MAPE, the mean signed error and its worst rows.

Rows that cannot be predicted from what they state (no parallel configuration, a device
without a preset, run-to-run variability figures) are listed with the reason, not dropped.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable
from pathlib import Path

from trainsim.collectives import collective_cost
from trainsim.engine import StepResult, cluster_system, predict
from trainsim.models import (
    DeviceSpec,
    ModelSpec,
    ParallelPlan,
    measured_preset,
    memory_per_gpu,
    model_from_mapping,
    stage_layer_ranges,
)
from trainsim.studies._progress import LoopProgress
from trainsim.studies._validation_foundry import (
    FOUNDRY_FILE,
    FOUNDRY_SOURCE,
    FoundryPrediction,
    measured,
    predict_foundry_row,
    read_foundry_rows,
    row_config,
    row_groups,
    row_label,
)
from trainsim.studies._validation_ranking import run_key
from trainsim.studies._validation_report import ValidationReport, ValidationRow

__all__ = [
    "DATA_DIR_ENV",
    "DEVICE_SETS",
    "ValidationReport",
    "ValidationRow",
    "default_data_path",
    "run_validation",
]

_DEVICES = {"A100-80GB": "a100-80gb", "A100-40GB": "a100-40gb", "H100": "h100-sxm"}
#: Device sets a validation can score: the presets, or the tables from published measurements.
DEVICE_SETS = ("presets", "published")
#: Source prefix -> short label for tables.
_SOURCES = {
    "Narayanan": "Narayanan 2021 Table 1",
    "Korthikanti": "Korthikanti 2022 Table 5",
    "NVIDIA Megatron-LM README": "Megatron-Core H100",
    "nccl-tests": "nccl-tests 2x8 H100",
    "Golden": "PRISM",
    "NVIDIA ADLR": "Megatron v1 V100",
}

#: Sources on Megatron-LM before Megatron-Core (2019-2022). It had no fused attention (added
#: in 2023): their runs stored and streamed the s x s attention scores. Its local DDP reduced
#: data-parallel gradients after the backward pass, not during it (``--overlap-grad-reduce``
#: came with Megatron-Core). Its linear layers added the QKV bias after the GEMM and summed
#: its gradient in separate kernels (``output + bias``, ``grad_output.sum(dim=0)``).
_LEGACY_MEGATRON = ("Narayanan", "Korthikanti", "NVIDIA ADLR")
#: Sources whose Megatron-LM predates gradient-accumulation fusion (late 2021): every
#: micro-batch's weight gradients were added to the fp32 main gradients in a separate pass.
_UNFUSED_GRAD_ACCUMULATION = ("Narayanan", "NVIDIA ADLR")

#: Columns the study reads from every row.
_COLUMNS = frozenset(
    [
        "source",
        "model",
        "layers",
        "hidden",
        "heads",
        "seq_len",
        "vocab",
        "global_batch",
        "micro_batch",
        "gpus",
        "gpu_type",
        "precision",
        "tp",
        "pp",
        "dp",
        "cp",
        "ep",
        "sp",
        "recompute",
        "interleave",
        "zero_stage",
        "metric",
        "value",
        "notes",
    ]
)


#: Environment variable naming the reference-data folder (the one holding ``ground_truth/``).
DATA_DIR_ENV = "TRAINSIM_DATA"
_PUBLISHED = Path("ground_truth") / "published.csv"


def default_data_path() -> Path:
    """Where ``published.csv`` is: under ``$TRAINSIM_DATA``, else ``shared/data`` found upwards.

    The installed package does not ship the reference data; a checkout keeps it in
    ``../shared/data`` beside the repository, so the current directory and each of its parents
    are searched for ``shared/data``. When none has it, the first candidate is returned and
    reading it fails naming that path.
    """
    configured = os.environ.get(DATA_DIR_ENV)
    if configured:
        return Path(configured) / _PUBLISHED
    here = Path.cwd().resolve()
    candidates = [d / "shared" / "data" / _PUBLISHED for d in (here, *here.parents)]
    fallback = here.parent / "shared" / "data" / _PUBLISHED
    return next((c for c in candidates if c.is_file()), fallback)


def _number(text: str) -> float | None:
    text = text.strip().rstrip("%")
    try:
        return float(text)
    except ValueError:
        return None


def _int(text: str, default: int) -> int:
    value = _number(text)
    return default if value is None else int(value)


def _source(text: str) -> str:
    for prefix, label in _SOURCES.items():
        if text.startswith(prefix):
            return label
    return text[:26]


def _model(row: dict[str, str]) -> ModelSpec:
    return model_from_mapping(
        {
            "name": row["model"].lower().replace(" ", "-"),
            "num_layers": int(row["layers"]),
            "hidden_size": int(row["hidden"]),
            "num_heads": int(row["heads"]),
            "vocab_size": int(row["vocab"]),
            "seq_len": int(row["seq_len"]),
            "tied_embeddings": True,
            "learned_position_embeddings": True,
            "dropout": True,
            "bias": True,
        },
        source=f"row {row['model']}",
    )


def _plan(row: dict[str, str]) -> ParallelPlan:
    recompute = row["recompute"].strip() or "none"
    # Overlap flags a row states in its notes are part of its configuration; Megatron's
    # --tp-comm-overlap requires --sequence-parallel, so it implies sequence parallelism.
    tp_overlap = "--tp-comm-overlap" in row["notes"]
    # --overlap-param-gather exists only with Megatron's distributed optimizer, which is
    # ZeRO stage 1: such a row shards optimizer states at least that far.
    sharded_optimizer = "--overlap-param-gather" in row["notes"]
    zero_stage = max(_int(row["zero_stage"], 0), 1 if sharded_optimizer else 0)
    return ParallelPlan(
        tp=_int(row["tp"], 1),
        pp=_int(row["pp"], 1),
        dp=_int(row["dp"], 1),
        cp=_int(row["cp"], 1),
        ep=_int(row["ep"], 1),
        vpp=_int(row["interleave"], 1),
        sequence_parallel=row["sp"].strip() == "1" or tp_overlap,
        overlap_tp_comm=tp_overlap,
        zero_stage=zero_stage,
        micro_batch_size=_int(row["micro_batch"], 1),
        global_batch_size=_int(row["global_batch"], 0) or None,
        recompute=recompute,
        attention="unfused" if row["source"].startswith(_LEGACY_MEGATRON) else "flash",
        grad_accumulation_fusion=not row["source"].startswith(_UNFUSED_GRAD_ACCUMULATION),
        gemm_bias_fusion=not row["source"].startswith(_LEGACY_MEGATRON),
        overlap_grad_reduce=not row["source"].startswith(_LEGACY_MEGATRON),
        # fp16 and bf16 share the tensor-core rate; fp16 adds loss scaling to the optimizer.
        dtype="fp16" if row["precision"].strip().startswith("fp16") else "bf16",
    )


def _device(row: dict[str, str]) -> str | None:
    gpu = row["gpu_type"]
    for key, name in _DEVICES.items():
        if gpu.startswith(key):
            return name
    return None


def _predict_metric(metric: str, result: StepResult) -> float | None:
    """Our value of a published step metric (None for a metric the study does not predict)."""
    m = result.metrics
    assert m is not None
    step = result.step_time_s
    if metric in ("achieved_tflops_per_gpu", "pct_of_theoretical_peak"):
        tflops = m.hardware_flops_per_step / m.gpus / step / 1e12
        return (
            tflops if metric.startswith("achieved") else 100 * tflops * 1e12 / m.peak_flops_per_gpu
        )
    if metric == "model_tflops_per_gpu":
        return m.model_flops_per_step / m.gpus / step / 1e12
    if metric == "step_time_s":
        return step
    if metric == "MFU":
        return 100 * (result.mfu or 0.0)
    if metric == "HFU":
        return 100 * (result.hfu or 0.0)
    return None


def _memory_metric(metric: str, model: ModelSpec, plan: ParallelPlan) -> float:
    """Our per-GPU memory (GiB) for a published memory row: states or activations.

    The states row (Korthikanti et al. Fig. 1) counts the weights, gradients and optimizer
    states of the transformer layers a GPU holds, not the embedding the first and last
    stages add: ours are scaled from the peak stage's weights to its layers' weights.
    """
    memory = memory_per_gpu(model, plan)
    if metric.startswith("mem_params"):
        layers = sum(len(chunk) for chunk in stage_layer_ranges(model, plan)[memory.stage])
        layer_params = layers * model.dense_layer_params() // plan.tp
        return memory.states_bytes * layer_params / memory.params / 2**30
    return memory.activations_bytes / 2**30


def _nccl_row(row: dict[str, str], cost_model: str) -> float | None:
    """Bus bandwidth of an nccl-tests all-reduce on the cluster the row names (GB/s)."""
    size = int(row["metric"].split("@")[1].rstrip("B"))
    gpus = int(row["gpus"])
    cluster = "gcp-a3-mega" if "A3-Mega" in row["source"] else None
    system = cluster_system("h100-sxm", gpus, cluster=cluster, cost_model=cost_model)
    cost = collective_cost(
        "all_reduce",
        size,
        range(gpus),
        system.topology,
        None,
        system.cost_model,
        system.collective,
    )
    time_s = cost.time_ns * 1e-9
    return size / time_s * 2 * (gpus - 1) / gpus / 1e9


def run_validation(
    path: str | Path | None = None,
    *,
    cost_model: str = "nccl",
    devices: Iterable[DeviceSpec] = (),
    progress: bool | None = None,
    foundry: str | Path | None = None,
    include_foundry: bool = True,
    device_set: str = "presets",
) -> ValidationReport:
    """Predict every row of the published-measurements table and of the llm-foundry table,
    and report the errors.

    ``devices`` replace the presets of the same name, e.g. a device whose GEMM rates were
    measured (``models.measured_device``): every row on that device uses them. ``progress``
    shows a bar on stderr (None: only when stderr is a terminal). ``foundry`` is the
    llm-foundry MPT table (``studies._validation_foundry``); by default the one beside the
    published table, scored when it is there (the report notes when it is not). A ``foundry``
    path that does not exist is an error; ``include_foundry=False`` leaves the source out.
    ``device_set="published"`` puts ``models.measured_preset`` of every device the tables use
    in place of its preset (``devices`` still replace those of their name).
    """
    if device_set not in DEVICE_SETS:
        raise ValueError(f"device_set={device_set!r} is not one of {', '.join(DEVICE_SETS)}")
    replaced: dict[str, DeviceSpec] = {}
    if device_set == "published":
        replaced = {name: measured_preset(name) for name in sorted(set(_DEVICES.values()))}
    replaced.update({spec.name: spec for spec in devices})
    unknown = sorted(set(replaced) - set(_DEVICES.values()))
    if unknown:
        known = ", ".join(sorted(set(_DEVICES.values())))
        raise ValueError(f"device {unknown[0]!r} is not one the table uses (known: {known})")
    report = ValidationReport()
    cache: dict[tuple[str, ...], StepResult] = {}
    source_path = Path(path or default_data_path())
    if not source_path.is_file():
        raise FileNotFoundError(
            f"{source_path}: no published-measurements table there; pass its path (--data) or "
            f"set {DATA_DIR_ENV} to the folder holding ground_truth/published.csv"
        )
    with open(source_path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = sorted(_COLUMNS - set(reader.fieldnames or ()))
        if missing:
            raise ValueError(f"{source_path}: not a published-measurements table (no {missing})")
        rows = list(reader)
    with LoopProgress("validate", len(rows), enabled=progress) as bar:
        for row in bar.track(rows, lambda r: f"{r['model']} {r['metric']}"):
            source = _source(row["source"])
            entry = ValidationRow(
                source,
                row["model"],
                row["gpus"],
                row["metric"],
                _number(row["value"]),
                run_key=run_key(row),
            )
            report.rows.append(entry)
            if entry.measured is None:
                entry.skipped = "no numeric value"
                continue
            if source == "nccl-tests 2x8 H100":
                entry.predicted = _nccl_row(row, cost_model)
                continue
            device = _device(row)
            if source in ("PRISM",):
                entry.skipped = "variability figure: see the forecast study"
                continue
            if device is None:
                entry.skipped = f"no device preset for {row['gpu_type']!r}"
                continue
            if not row["layers"] or not row["tp"]:
                entry.skipped = "model shape or parallel configuration not stated"
                continue
            model, plan = _model(row), _plan(row)
            if row["metric"].startswith("mem_"):
                entry.predicted = _memory_metric(row["metric"], model, plan)
                continue
            key = tuple(
                row[k]
                for k in (
                    "model",
                    "gpus",
                    "tp",
                    "pp",
                    "dp",
                    "sp",
                    "recompute",
                    "interleave",
                    "micro_batch",
                    "global_batch",
                    "seq_len",
                )
            )
            result = cache.get(key)
            if result is None:
                spec = replaced.get(device, device)
                system = cluster_system(spec, plan.num_gpus, cost_model=cost_model)
                result = predict(model, plan, system)
                cache[key] = result
            value = _predict_metric(row["metric"], result)
            if value is None or math.isnan(value):
                entry.skipped = f"metric {row['metric']!r} is not predicted"
            else:
                entry.predicted = value
    if include_foundry:
        foundry_path = Path(foundry) if foundry else source_path.parent / FOUNDRY_FILE
        if foundry_path.is_file():
            _validate_foundry(report, foundry_path, cost_model, replaced, progress)
        elif foundry:
            raise FileNotFoundError(f"{foundry_path}: no llm-foundry benchmark table there")
        else:
            report.notes.append(f"{FOUNDRY_SOURCE}: no {FOUNDRY_FILE} beside {source_path}")
    return report


def _validate_foundry(
    report: ValidationReport,
    path: Path,
    cost_model: str,
    devices: dict[str, DeviceSpec],
    progress: bool | None,
) -> None:
    """Add a row per llm-foundry run: throughput first, MFU/HFU/TFLOP/s in MPT's convention."""
    rows = read_foundry_rows(path)
    cache: dict[tuple[str, ...], FoundryPrediction] = {}
    with LoopProgress("validate llm-foundry", len(rows), enabled=progress) as bar:
        for row in bar.track(rows, row_label):
            entry = ValidationRow(
                FOUNDRY_SOURCE,
                row_label(row),
                row["gpus"],
                "tokens_per_s_per_gpu",
                measured(row, "tokens_per_s_per_gpu"),
                groups=row_groups(row),
                config=row_config(row),
                run_key=run_key(row),
            )
            report.rows.append(entry)
            if entry.measured is None:
                entry.skipped = "no numeric throughput"
                continue
            outcome = predict_foundry_row(row, cost_model=cost_model, devices=devices, cache=cache)
            if isinstance(outcome, str):
                entry.skipped = outcome
                continue
            values = outcome.metrics()
            entry.predicted = values["tokens_per_s_per_gpu"]
            entry.secondary = {
                f"{name} (MPT FLOPs)": (measured(row, name), values[name])
                for name in ("mfu_pct", "hfu_pct", "model_tflops_per_gpu")
            }
            if any("would not fit" in note for note in outcome.result.notes):
                entry.config += " (predicted not to fit in memory)"
