"""The public surface of ``models`` changes only on purpose."""

from __future__ import annotations

from trainsim import models


def test_all_is_the_curated_public_api() -> None:
    assert sorted(models.__all__) == sorted(
        [
            "Attention",
            "AttentionMeasurement",
            "GemmMeasurement",
            "DEFAULT_ATTENTION_HEAD_DIMS",
            "DEFAULT_ATTENTION_SEQ_LENS",
            "DEFAULT_GEMM_DIMS",
            "measure_attention",
            "measure_gemm",
            "measured_device",
            "measured_preset",
            "measured_presets",
            "MEASURED_PRESET_NAMES",
            "tables_from_raw",
            "ROOFLINE_ATTR",
            "TIGHT_MARGIN_FRACTION",
            "COMM_SMS_ATTR",
            "COMM_BESIDE_ATTR",
            "encode_roofline",
            "Segment",
            "StageTail",
            "segment_key",
            "segment_plan_key",
            "stage_segment",
            "stage_tail",
            "roofline_time_us",
            "DEVICE_PRESETS",
            "GROUP_KINDS",
            "HF_TRAINING_SEQ_LEN",
            "MODEL_PRESETS",
            "DType",
            "DeviceSpec",
            "EfficiencyModel",
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
            "StepFlops",
            "UnknownPresetError",
            "check_memory",
            "check_plan",
            "describe_layout",
            "device_preset",
            "embedding_cost",
            "generate_rank",
            "generate_rank_classes",
            "hf_max_positions",
            "layer_cost",
            "load_device",
            "load_model",
            "local_params",
            "logits_cost",
            "memory_by_stage",
            "memory_fit",
            "memory_per_gpu",
            "model_from_hf_config",
            "model_from_mapping",
            "model_preset",
            "optimizer_cost",
            "pipeline_schedule",
            "plan_from_mapping",
            "stage_layer_counts",
            "stage_layer_ranges",
            "stage_layers",
            "step_flops",
            "write_per_rank",
            "write_rank_classes",
        ]
    )
    for name in models.__all__:
        assert hasattr(models, name), name


def test_every_error_is_a_value_error() -> None:
    for err in (
        models.ModelsError,
        models.InvalidModelError,
        models.InvalidPlanError,
        models.MemoryCapacityError,
        models.UnknownPresetError,
    ):
        assert issubclass(err, ValueError)
