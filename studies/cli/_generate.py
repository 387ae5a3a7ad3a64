"""``trainsim generate``: write the Chakra ETs of a model under a parallelism plan.

Also home of the model and plan flags that ``trainsim memory`` shares.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from trainsim import models
from trainsim.studies._sweep_space import DEFAULT_BATCH_TOKENS, typical_global_batch
from trainsim.studies.cli._args import positive_int
from trainsim.studies.cli._main import CLIError

__all__ = [
    "BUBBLE_WARNING_FRACTION",
    "MODEL_OVERRIDES",
    "add_workload_flags",
    "bubble_warning",
    "describe_run",
    "model_from_args",
    "register",
    "workload_from_args",
]

#: Model flags that override the preset's values: flag -> ModelSpec field.
MODEL_OVERRIDES = {
    "layers": "num_layers",
    "hidden": "hidden_size",
    "heads": "num_heads",
    "kv_heads": "num_kv_heads",
    "ffn": "ffn_hidden_size",
    "vocab": "vocab_size",
}


def add_workload_flags(parser: argparse.ArgumentParser) -> None:
    """Add the flags that describe a model and its parallelism plan."""
    # Not argparse-required, so that a --config file can supply it.
    parser.add_argument(
        "--model", help="preset name (e.g. llama3-70b), YAML file, or config.json (required)"
    )
    for flag, field in MODEL_OVERRIDES.items():
        parser.add_argument(
            f"--{flag.replace('_', '-')}", type=positive_int, help=f"override the model's {field}"
        )
    parser.add_argument(
        "--gated-mlp", action=argparse.BooleanOptionalAction, default=None, help="SwiGLU MLP"
    )
    parser.add_argument(
        "--precision",
        choices=("bf16", "fp16", "fp8"),
        default="bf16",
        help="compute precision of the plan (default bf16)",
    )
    parser.add_argument(
        "--fp8-recipe",
        choices=("delayed", "current", "blockwise", "mxfp8"),
        default="delayed",
        help="FP8 scaling with --precision fp8: Transformer Engine's delayed (default) or "
        "current per-tensor scaling, blockwise (DeepSeek-V3), mxfp8 (Blackwell only)",
    )
    parser.add_argument("--gpus", type=positive_int, help="GPU count; dp = gpus / (tp*pp*cp)")
    parser.add_argument("--dp", type=positive_int, help="data-parallel size (instead of --gpus)")
    parser.add_argument("--tp", type=positive_int, default=1, help="tensor-parallel size")
    parser.add_argument("--pp", type=positive_int, default=1, help="pipeline stages")
    parser.add_argument("--cp", type=positive_int, default=1, help="context-parallel size")
    parser.add_argument("--ep", type=positive_int, default=1, help="expert-parallel size")
    parser.add_argument(
        "--vpp", type=positive_int, default=1, help="virtual stages per pipeline rank"
    )
    parser.add_argument(
        "--sp", "--sequence-parallel", dest="sp", action="store_true", help="sequence parallel"
    )
    parser.add_argument("--zero", type=int, choices=range(4), help="ZeRO stage (0)")
    parser.add_argument(
        "--distributed-optimizer",
        "--use-distributed-optimizer",
        dest="distributed_optimizer",
        action="store_true",
        help="Megatron's name for ZeRO stage 1: --zero at least 1",
    )
    parser.add_argument(
        "--micro-batch", type=positive_int, default=1, help="sequences per micro-batch"
    )
    parser.add_argument(
        "--global-batch", type=positive_int, help="sequences per step (default: mb*dp)"
    )
    parser.add_argument("--seq", type=positive_int, help="sequence length (default: the model's)")
    parser.add_argument(
        "--recompute", choices=("none", "selective", "full"), default="none", help="recompute"
    )
    parser.add_argument(
        "--attention",
        choices=("flash", "unfused"),
        default="flash",
        help="fused (flash) attention, or unfused with the s x s scores in memory",
    )
    parser.add_argument(
        "--no-grad-accumulation-fusion",
        action="store_true",
        help="add each micro-batch's weight gradients to the fp32 ones in a separate pass",
    )
    parser.add_argument(
        "--no-gemm-bias-fusion",
        action="store_true",
        help="add the QKV bias and sum its gradient in kernels of their own (Megatron-LM 2022)",
    )
    parser.add_argument("--first-stage-layers", type=positive_int, help="layers of the first stage")
    parser.add_argument("--last-stage-layers", type=positive_int, help="layers of the last stage")
    parser.add_argument(
        "--no-overlap-grad-reduce", action="store_true", help="reduce gradients after backward"
    )
    parser.add_argument("--tp-comm-overlap", action="store_true", help="overlap TP comms")
    parser.add_argument(
        "--no-pipeline-scatter-gather",
        action="store_true",
        help="send whole activations between stages (not Megatron's 1/tp plus all-gather)",
    )


def model_from_args(args: argparse.Namespace) -> models.ModelSpec:
    """The model ``--model`` names, with the shape overrides and ``--seq`` applied."""
    if not args.model:
        raise CLIError(f"trainsim {args.command}: --model is required")
    model = models.load_model(args.model)
    if args.seq is None:
        _note_hf_sequence(args.model, model)
    overrides: dict[str, Any] = {
        field: getattr(args, flag)
        for flag, field in MODEL_OVERRIDES.items()
        if getattr(args, flag, None) is not None
    }
    if args.seq is not None:
        overrides["seq_len"] = args.seq
    if args.gated_mlp is not None:
        overrides["gated_mlp"] = args.gated_mlp
    if overrides:
        model = models.model_from_mapping({**model.model_dump(), **overrides})
    return model


#: A bubble above this share of the step is worth a warning (more micro-batches shrink it).
BUBBLE_WARNING_FRACTION = 0.25


def describe_run(
    model: models.ModelSpec, plan: models.ParallelPlan, *, chosen: bool = False
) -> list[str]:
    """What the prediction assumed, stated: sequence, batch, micro-batches, layout, precision."""
    tokens = plan.batch_size * model.seq_len
    given = (
        f"; not given: chosen to hold {DEFAULT_BATCH_TOKENS / 1e6:.1f}M tokens or more, a "
        "typical pre-training batch; --global-batch sets another"
        if chosen
        else ""
    )
    lines = [
        f"run: sequences of {model.seq_len:,} tokens, global batch {plan.batch_size:,} "
        f"({tokens / 1e6:.3g}M tokens{given}), micro-batch {plan.micro_batch_size}, "
        f"{plan.num_micro_batches} micro-batch(es) per step, {plan.dtype}"
    ]
    if plan.pp > 1:
        lines.append(f"pipeline: {models.describe_layout(model, plan)}")
    return lines


def bubble_warning(step_s: float, bubble_s: float) -> str | None:
    """A warning when the pipeline bubble is more than a quarter of the step."""
    if step_s > 0 and bubble_s > BUBBLE_WARNING_FRACTION * step_s:
        return (
            f"warning: the pipeline bubble is {bubble_s / step_s:.0%} of the step; more "
            "micro-batches per step (a larger --global-batch) or interleaving (--vpp) shrink it"
        )
    return None


def _note_hf_sequence(source: str, model: models.ModelSpec) -> None:
    """Say so when a config.json's maximum positions is not the sequence it trains at."""
    path = Path(source)
    if not path.is_file() or path.suffix != ".json":
        return
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError):
        return  # load_model read it; a second reading only serves this note
    most = models.hf_max_positions(config) if isinstance(config, dict) else None
    if most is not None and most > model.seq_len:
        print(
            f"note: {path.name} allows {most:,} positions; training at {model.seq_len:,} "
            f"tokens (the smaller of it and {models.HF_TRAINING_SEQ_LEN:,}; --seq sets another)",
            file=sys.stderr,
        )


def workload_from_args(args: argparse.Namespace) -> tuple[models.ModelSpec, models.ParallelPlan]:
    """Build the ModelSpec and ParallelPlan the flags describe, and check the plan.

    The shape overrides apply before the plan is checked: ``--model gpt3-175b --layers 105
    --pp 35`` is checked against 105 layers, not the preset's 96.
    """
    model = model_from_args(args)
    fields: dict[str, Any] = {
        "tp": args.tp,
        "pp": args.pp,
        "cp": args.cp,
        "ep": args.ep,
        "vpp": args.vpp,
        "sequence_parallel": args.sp,
        "micro_batch_size": args.micro_batch,
        "global_batch_size": args.global_batch,
        "recompute": args.recompute,
        "attention": args.attention,
        "grad_accumulation_fusion": not args.no_grad_accumulation_fusion,
        "gemm_bias_fusion": not args.no_gemm_bias_fusion,
        "first_stage_layers": args.first_stage_layers,
        "last_stage_layers": args.last_stage_layers,
        "overlap_grad_reduce": not args.no_overlap_grad_reduce,
        "overlap_tp_comm": args.tp_comm_overlap,
        "pipeline_scatter_gather": not args.no_pipeline_scatter_gather,
        "dtype": args.precision,
        "fp8_recipe": args.fp8_recipe,
    }
    # --zero left out is the default stage, so --distributed-optimizer alone means stage 1
    # while an explicit --zero 0 with it is refused as a contradiction.
    if args.zero is not None:
        fields["zero_stage"] = args.zero
    if args.distributed_optimizer:
        fields["distributed_optimizer"] = True
    if args.gpus is not None:
        if args.dp is not None and args.dp * args.tp * args.pp * args.cp != args.gpus:
            raise models.InvalidPlanError(
                f"--dp={args.dp} disagrees with --gpus={args.gpus} / (tp*pp*cp)"
            )
        plan = models.ParallelPlan.for_gpus(args.gpus, **fields)
    else:
        plan = models.plan_from_mapping({**fields, "dp": args.dp or 1})
    if args.global_batch is None:
        # What a real run would fix, not one micro-batch per data-parallel rank (which made
        # the bubble the step): about 4M tokens, split by micro_batch_size x dp.
        batch = typical_global_batch(model.seq_len, plan.micro_batch_size * plan.dp)
        plan = models.plan_from_mapping({**plan.model_dump(), "global_batch_size": batch})
    models.check_plan(model, plan)
    return model, plan


def register(sub: Any) -> None:
    """Add the ``generate`` subcommand."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "generate", help="write per-stage (or per-rank) Chakra ETs of a model and plan"
    )
    add_workload_flags(parser)
    parser.add_argument(
        "--granularity", choices=("layer", "op"), default="layer", help="node granularity"
    )
    parser.add_argument("-o", "--output", metavar="DIR", help="output folder (required)")
    parser.add_argument("--prefix", default="workload", help="file name prefix")
    parser.add_argument(
        "--per-rank",
        action="store_true",
        help="write PREFIX.<rank>.et for every rank plus comm_groups.json (ASTRA-sim)",
    )
    parser.add_argument(
        "--device",
        help="device preset or YAML file: also fill duration_micros from its roofline",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if not args.output:
        raise CLIError("trainsim generate: -o/--output is required")
    model, plan = workload_from_args(args)
    device = models.load_device(args.device) if args.device else None
    if args.per_rank:
        paths = models.write_per_rank(
            model, plan, args.output, args.prefix, granularity=args.granularity, device=device
        )
        nodes: dict[str, int] = {}
    else:
        graphs = models.generate_rank_classes(
            model, plan, granularity=args.granularity, device=device
        )
        paths = models.write_rank_classes(graphs, args.output, args.prefix)
        nodes = {f"stage{stage}": len(g) for stage, g in graphs.items()}
    flops = models.step_flops(model, plan)
    payload = {
        "model": model.name,
        "gpus": plan.num_gpus,
        "plan": plan.model_dump(),
        "granularity": args.granularity,
        "files": [str(p) for p in paths],
        "nodes": nodes,
        "model_flops_per_step": flops.model_flops,
        "hardware_flops_per_step": flops.hardware_flops,
    }
    if args.json:
        print(json.dumps(payload))
        return 0
    print(
        f"{model.name}: {plan.num_gpus} GPUs = tp {plan.tp} x cp {plan.cp} x dp {plan.dp} x "
        f"pp {plan.pp} (ep {plan.ep}, vpp {plan.vpp}), {plan.num_micro_batches} micro-batches"
    )
    print(
        f"step: {flops.model_flops / 1e15:.1f} PFLOP model, "
        f"{flops.hardware_flops / 1e15:.1f} PFLOP hardware"
    )
    kind = "rank" if args.per_rank else "rank-class"
    print(f"wrote {len(paths)} {kind} ET file(s) to {args.output}")
    for stage, count in nodes.items():
        print(f"  {args.prefix}.{stage}.et: {count} nodes")
    return 0
