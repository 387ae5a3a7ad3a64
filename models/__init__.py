"""Workload specs, parallelism plans, devices, memory footprints and ET generation.

A ``ModelSpec`` (presets, YAML, HuggingFace ``config.json``) and a ``ParallelPlan`` give the
FLOPs and bytes of every operation (``step_flops``, ``layer_cost``), the memory each GPU needs
(``memory_by_stage``), the process groups of every kind (``RankLayout``) and the Chakra ETs the
engine simulates (``generate_rank_classes``); a ``DeviceSpec`` gives peak rates, capacity and
the efficiency model that turns FLOPs and bytes into time.
"""

from trainsim.models._device import (
    DEVICE_PRESETS,
    DeviceSpec,
    DType,
    EfficiencyModel,
    device_preset,
    load_device,
)
from trainsim.models._errors import (
    InvalidModelError,
    InvalidPlanError,
    MemoryCapacityError,
    ModelsError,
    UnknownPresetError,
)
from trainsim.models._flops import (
    LayerCost,
    OpCost,
    StepFlops,
    embedding_cost,
    layer_cost,
    logits_cost,
    optimizer_cost,
    step_flops,
)
from trainsim.models._generate import (
    Granularity,
    generate_rank,
    generate_rank_classes,
    pipeline_schedule,
    write_per_rank,
    write_rank_classes,
)
from trainsim.models._loading import (
    HF_TRAINING_SEQ_LEN,
    hf_max_positions,
    load_model,
    model_from_hf_config,
    model_from_mapping,
)
from trainsim.models._measure import (
    DEFAULT_ATTENTION_HEAD_DIMS,
    DEFAULT_ATTENTION_SEQ_LENS,
    DEFAULT_GEMM_DIMS,
    measure_attention,
    measure_gemm,
    measured_device,
    tables_from_raw,
)
from trainsim.models._measured import AttentionMeasurement, GemmMeasurement
from trainsim.models._memory import (
    TIGHT_MARGIN_FRACTION,
    MemoryBreakdown,
    MemoryFit,
    check_memory,
    local_params,
    memory_by_stage,
    memory_fit,
    memory_per_gpu,
    stage_layers,
)
from trainsim.models._plan import (
    Attention,
    ParallelPlan,
    Recompute,
    check_plan,
    describe_layout,
    plan_from_mapping,
    stage_layer_counts,
    stage_layer_ranges,
)
from trainsim.models._presets import MODEL_PRESETS, model_preset
from trainsim.models._published import (
    MEASURED_PRESET_NAMES,
    measured_preset,
    measured_presets,
)
from trainsim.models._ranks import GROUP_KINDS, RankCoord, RankLayout
from trainsim.models._roofline import (
    COMM_BESIDE_ATTR,
    COMM_SMS_ATTR,
    ROOFLINE_ATTR,
    encode_roofline,
    roofline_time_us,
)
from trainsim.models._segments import (
    Segment,
    StageTail,
    segment_key,
    segment_plan_key,
    stage_segment,
    stage_tail,
)
from trainsim.models._spec import ModelSpec, Projection

__all__ = [
    "COMM_BESIDE_ATTR",
    "COMM_SMS_ATTR",
    "DEFAULT_ATTENTION_HEAD_DIMS",
    "DEFAULT_ATTENTION_SEQ_LENS",
    "DEFAULT_GEMM_DIMS",
    "DEVICE_PRESETS",
    "GROUP_KINDS",
    "HF_TRAINING_SEQ_LEN",
    "MEASURED_PRESET_NAMES",
    "MODEL_PRESETS",
    "ROOFLINE_ATTR",
    "TIGHT_MARGIN_FRACTION",
    "Attention",
    "AttentionMeasurement",
    "DType",
    "DeviceSpec",
    "EfficiencyModel",
    "GemmMeasurement",
    "Granularity",
    "InvalidModelError",
    "InvalidPlanError",
    "LayerCost",
    "MemoryBreakdown",
    "MemoryCapacityError",
    "MemoryFit",
    "ModelSpec",
    "ModelsError",
    "OpCost",
    "ParallelPlan",
    "Projection",
    "RankCoord",
    "RankLayout",
    "Recompute",
    "Segment",
    "StageTail",
    "StepFlops",
    "UnknownPresetError",
    "check_memory",
    "check_plan",
    "describe_layout",
    "device_preset",
    "embedding_cost",
    "encode_roofline",
    "generate_rank",
    "generate_rank_classes",
    "hf_max_positions",
    "layer_cost",
    "load_device",
    "load_model",
    "local_params",
    "logits_cost",
    "measure_attention",
    "measure_gemm",
    "measured_device",
    "measured_preset",
    "measured_presets",
    "memory_by_stage",
    "memory_fit",
    "memory_per_gpu",
    "model_from_hf_config",
    "model_from_mapping",
    "model_preset",
    "optimizer_cost",
    "pipeline_schedule",
    "plan_from_mapping",
    "roofline_time_us",
    "segment_key",
    "segment_plan_key",
    "stage_layer_counts",
    "stage_layer_ranges",
    "stage_layers",
    "stage_segment",
    "stage_tail",
    "step_flops",
    "tables_from_raw",
    "write_per_rank",
    "write_rank_classes",
]
