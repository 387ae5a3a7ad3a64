"""ParallelPlan: how a training job splits one model over GPUs, and its checks against a model.

Dimensions follow Megatron-LM: tensor (``tp``, optionally with sequence parallelism), context
(``cp``), data (``dp``) and pipeline (``pp``, 1F1B, interleaved with ``vpp`` virtual stages per
rank) parallelism multiply to the GPU count; expert parallelism (``ep``) splits the experts of
MoE layers over ranks of the data x context dimension (experts keep the dense layers' tensor
parallelism). ZeRO stage 1 shards optimizer states over the data x context group, stage 2
also gradients, stage 3 (FSDP) also weights. Megatron-LM calls stage 1 its distributed optimizer
(``--use-distributed-optimizer``): ``distributed_optimizer=True`` is accepted on input as another
name for ``zero_stage >= 1`` and is not kept as a field of its own, so one plan has one spelling.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from trainsim.models._errors import InvalidPlanError
from trainsim.models._spec import ModelSpec

__all__ = [
    "Attention",
    "ParallelPlan",
    "Recompute",
    "check_plan",
    "describe_layout",
    "plan_from_mapping",
    "stage_layer_counts",
    "stage_layer_ranges",
]

Recompute = Literal["none", "selective", "full"]
Attention = Literal["flash", "unfused"]

#: The input-only alias of ZeRO stage 1 (Megatron-LM's ``--use-distributed-optimizer``).
_DISTRIBUTED_OPTIMIZER = "distributed_optimizer"
_BOOL = TypeAdapter(bool)
_INT = TypeAdapter(int)


class ParallelPlan(BaseModel):
    """Parallelism degrees, batch sizes, recompute, ZeRO stage and overlap switches of a job.

    ``distributed_optimizer=True`` (Megatron-LM's name for ZeRO stage 1) is read as
    ``zero_stage`` of at least 1; with an explicit ``zero_stage=0`` it is refused.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    tp: int = Field(1, ge=1, description="tensor-parallel size")
    pp: int = Field(1, ge=1, description="pipeline-parallel stages")
    dp: int = Field(1, ge=1, description="data-parallel replicas")
    cp: int = Field(1, ge=1, description="context-parallel size (sequence split for attention)")
    ep: int = Field(1, ge=1, description="expert-parallel size, within dp x cp")
    vpp: int = Field(1, ge=1, description="virtual stages per pipeline rank (interleaved 1F1B)")
    first_stage_layers: int | None = Field(
        None, ge=1, description="layers of the first pipeline stage when uneven (Llama 3 405B)"
    )
    last_stage_layers: int | None = Field(
        None, ge=1, description="layers of the last pipeline stage when uneven"
    )
    sequence_parallel: bool = Field(False, description="shard norms/dropout over the TP group")
    zero_stage: int = Field(
        0,
        ge=0,
        le=3,
        description="ZeRO stage: 1 shards optimizer states (Megatron's distributed optimizer), "
        "2 also gradients, 3 (FSDP) also weights",
    )
    micro_batch_size: int = Field(1, ge=1, description="sequences per micro-batch")
    global_batch_size: int | None = Field(None, ge=1, description="sequences per step")
    recompute: Recompute = Field("none", description="activation recomputation")
    attention: Attention = Field(
        "flash",
        description="fused (flash) attention, or two batched GEMMs around a softmax that "
        "materialise the s x s scores (Megatron-LM before 2023)",
    )
    overlap_grad_reduce: bool = Field(True, description="overlap DP gradient reduction")
    overlap_param_gather: bool = Field(
        True,
        description="ZeRO-3/FSDP: gather each layer's weights while the previous layer computes "
        "(prefetch); the distributed optimizer's gather follows its step either way",
    )
    overlap_tp_comm: bool = Field(False, description="overlap TP communication with GEMMs")
    grad_accumulation_fusion: bool = Field(
        True,
        description="weight-gradient GEMMs accumulate into the fp32 main gradients; otherwise "
        "a separate pass adds each micro-batch's gradients (12 bytes per weight)",
    )
    gemm_bias_fusion: bool = Field(
        True,
        description="the GEMM adds its bias and reduces the bias gradient in its epilogue "
        "(Transformer Engine); otherwise the QKV projection adds its bias in a separate kernel "
        "and sums its gradient over the tokens in another (Megatron-LM before Megatron-Core)",
    )
    pipeline_scatter_gather: bool = Field(
        True,
        description="without sequence parallelism, each TP rank sends 1/tp of an activation "
        "to the next stage, which all-gathers it over NVLink (Megatron-LM's scatter/gather)",
    )
    blocking_p2p: bool = Field(
        True,
        description="a pipeline stage waits for its sends as well as its receives before "
        "computing on (Megatron's 1F1B exchanges); otherwise sends overlap the next compute",
    )
    dtype: Literal["bf16", "fp16", "fp8"] = Field("bf16", description="compute dtype")
    fp8_recipe: Literal["delayed", "current", "blockwise", "mxfp8"] = Field(
        "delayed",
        description="FP8 scaling (Transformer Engine): per-tensor delayed (its default) or "
        "current scaling, blockwise scales (DeepSeek-V3's 1x128/128x128), or MXFP8 (Blackwell)",
    )

    @model_validator(mode="before")
    @classmethod
    def _distributed_optimizer_alias(cls, data: Any) -> Any:
        """Fold Megatron's ``distributed_optimizer`` flag into ``zero_stage`` (one knob)."""
        if not isinstance(data, dict) or _DISTRIBUTED_OPTIMIZER not in data:
            return data
        fields = dict(data)
        raw = fields.pop(_DISTRIBUTED_OPTIMIZER)
        try:
            enabled = _BOOL.validate_python(raw)
        except ValidationError:
            raise InvalidPlanError(
                f"distributed_optimizer={raw!r}: must be true or false"
            ) from None
        if not enabled:
            return fields
        stage = fields.get("zero_stage")
        if stage is None:
            fields["zero_stage"] = 1
            return fields
        try:
            explicit = _INT.validate_python(stage)
        except ValidationError:
            # Not a number: the zero_stage field's own validation names it.
            return fields
        if explicit == 0:
            raise InvalidPlanError(
                "distributed_optimizer=True conflicts with zero_stage=0: the distributed "
                "optimizer shards optimizer states (ZeRO stage 1); drop one or set zero_stage >= 1"
            )
        return fields

    @model_validator(mode="after")
    def _check(self) -> ParallelPlan:
        per_step = self.micro_batch_size * self.dp
        if self.global_batch_size is not None and self.global_batch_size % per_step:
            raise InvalidPlanError(
                f"global_batch_size={self.global_batch_size} must be a multiple of "
                f"micro_batch_size*dp={self.micro_batch_size}*{self.dp}={per_step}"
            )
        if (self.dp * self.cp) % self.ep:
            raise InvalidPlanError(
                f"ep={self.ep} must divide dp*cp={self.dp}*{self.cp}={self.dp * self.cp}"
            )
        if self.vpp > 1 and self.pp == 1:
            raise InvalidPlanError(f"vpp={self.vpp} needs pp > 1 (pp=1)")
        return self

    @classmethod
    def for_gpus(cls, num_gpus: int, **fields: object) -> ParallelPlan:
        """Build a plan whose ``dp`` is what ``num_gpus`` leaves after tp x pp x cp."""
        tp, pp, cp = (int(str(fields.get(k, 1))) for k in ("tp", "pp", "cp"))
        for name, size in (("tp", tp), ("pp", pp), ("cp", cp)):
            if size < 1:
                raise InvalidPlanError(f"{name}={size} must be an integer >= 1")
        model_parallel = tp * pp * cp
        if num_gpus < 1 or num_gpus % model_parallel:
            raise InvalidPlanError(
                f"gpus={num_gpus} must be a positive multiple of tp*pp*cp="
                f"{tp}*{pp}*{cp}={model_parallel}"
            )
        return plan_from_mapping({**fields, "dp": num_gpus // model_parallel})

    @property
    def num_gpus(self) -> int:
        """GPUs the plan occupies: tp x cp x dp x pp."""
        return self.tp * self.cp * self.dp * self.pp

    @property
    def batch_size(self) -> int:
        """Sequences per optimizer step (global batch)."""
        return self.global_batch_size or self.micro_batch_size * self.dp

    @property
    def num_micro_batches(self) -> int:
        """Micro-batches each pipeline runs per step (the gradient-accumulation steps)."""
        return self.batch_size // (self.micro_batch_size * self.dp)

    @property
    def expert_dp(self) -> int:
        """Data-parallel size of expert weights: dp x cp / ep."""
        return self.dp * self.cp // self.ep

    @property
    def optimizer_sharded(self) -> bool:
        """Whether optimizer states are sharded over the data x context group."""
        return self.zero_stage >= 1

    @property
    def num_model_chunks(self) -> int:
        """Pipeline model chunks in total: pp x vpp."""
        return self.pp * self.vpp


def plan_from_mapping(data: object) -> ParallelPlan:
    """Validate a mapping of plan fields; errors name the field and the allowed range."""
    try:
        return ParallelPlan.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        msg = str(err["msg"]).removeprefix("Value error, ")
        loc = ".".join(str(p) for p in err["loc"])
        where = f"{loc}={err['input']!r}: " if loc else ""
        raise InvalidPlanError(f"plan: {where}{msg}") from None


def check_plan(model: ModelSpec, plan: ParallelPlan) -> None:
    """Reject a plan that does not fit ``model``; the error names the field and the numbers."""
    tp = plan.tp
    if model.num_heads % tp:
        raise InvalidPlanError(f"num_heads={model.num_heads} is not divisible by tp={tp}")
    if not model.is_mla and model.kv_heads % tp:
        raise InvalidPlanError(f"num_kv_heads={model.kv_heads} is not divisible by tp={tp}")
    if model.ffn_size % tp or (model.is_moe and model.expert_ffn_size % tp):
        raise InvalidPlanError(
            f"ffn_hidden_size={model.ffn_size} / expert_ffn_hidden_size="
            f"{model.expert_ffn_size} is not divisible by tp={tp}"
        )
    stage_layer_ranges(model, plan)
    if plan.cp > 1 and model.seq_len % (2 * plan.cp):
        raise InvalidPlanError(
            f"seq_len={model.seq_len} must be divisible by 2*cp={2 * plan.cp} "
            "(load-balanced context parallelism)"
        )
    if plan.sequence_parallel and (model.seq_len // plan.cp) % tp:
        raise InvalidPlanError(
            f"sequence parallelism needs seq_len/cp={model.seq_len // plan.cp} divisible by tp={tp}"
        )
    if plan.ep > 1 and not model.is_moe:
        raise InvalidPlanError(f"ep={plan.ep} needs an MoE model ({model.name} is dense)")
    if model.is_moe and model.num_experts % plan.ep:
        raise InvalidPlanError(f"num_experts={model.num_experts} is not divisible by ep={plan.ep}")


def stage_layer_counts(model: ModelSpec, plan: ParallelPlan) -> tuple[int, ...]:
    """Transformer layers of every pipeline stage (all its virtual chunks together).

    An even split when ``pp * vpp`` divides the layers; ``first_stage_layers`` /
    ``last_stage_layers`` when given (the other stages split the rest evenly, Megatron-Core's
    ``num_layers_in_first/last_pipeline_stage``); otherwise a balanced layout that counts the
    embedding toward the first stage and the output layer with the loss toward the last, one
    layer each, as Megatron's ``account_for_embedding_in_pipeline_split`` and
    ``account_for_loss_in_pipeline_split`` do: Llama 3 405B's 126 layers on 16 stages become
    7, 8 x 14, 7.
    """
    pp, layers = plan.pp, model.num_layers
    first, last = plan.first_stage_layers, plan.last_stage_layers
    if first is None and last is None:
        if layers % pp == 0:
            return (layers // pp,) * pp
        return _balanced_counts(layers, pp)
    if pp < 2:
        raise InvalidPlanError(f"first_stage_layers/last_stage_layers need pp >= 2 (pp={pp})")
    middle = pp - (first is not None) - (last is not None)
    rest = layers - (first or 0) - (last or 0)
    if rest < 0 or (middle == 0 and rest) or (middle and (rest % middle or rest == 0)):
        raise InvalidPlanError(
            f"num_layers={layers} minus first_stage_layers={first} and last_stage_layers={last} "
            f"leaves {rest}, which the {middle} other stages cannot split evenly"
        )
    per = rest // middle if middle else 0
    counts = [per] * pp
    if first is not None:
        counts[0] = first
    if last is not None:
        counts[-1] = last
    return tuple(counts)


def _balanced_counts(layers: int, pp: int) -> tuple[int, ...]:
    """Layers per stage when they do not divide: embedding and loss count one layer each."""
    units = layers + 2
    base, extra = divmod(units, pp)
    counts = [base] * pp
    # The extra units go to the middle stages first: the first and last also hold the
    # embedding and the output layer, which cost more than the one layer counted for them
    # when the vocabulary is large.
    order = [*range(1, pp - 1), 0, pp - 1]
    for stage in order[:extra]:
        counts[stage] += 1
    counts[0] -= 1
    counts[-1] -= 1
    if min(counts) < 1:
        raise InvalidPlanError(
            f"num_layers={layers} cannot give each of pp={pp} stages a layer once the "
            "embedding and the loss are counted toward the first and last stage"
        )
    return tuple(counts)


@lru_cache(maxsize=4096)
def stage_layer_ranges(model: ModelSpec, plan: ParallelPlan) -> tuple[tuple[range, ...], ...]:
    """Layer indices of every model chunk, by stage: ``result[stage][virtual_chunk]``.

    Stages hold ``stage_layer_counts`` layers; a stage's layers split over its ``vpp``
    virtual chunks as evenly as possible (the larger chunks first; Megatron-Core requires an
    exact split, which this reproduces when there is one). Layers are numbered in the
    interleaved schedule's order, chunk ``v`` of every stage before chunk ``v + 1``.
    Memoised (memory, generation and the fast tier ask for it per stage and step).
    """
    pp, vpp = plan.pp, plan.vpp
    counts = stage_layer_counts(model, plan)
    sizes: list[list[int]] = []
    for stage, count in enumerate(counts):
        if count < vpp:
            raise InvalidPlanError(
                f"stage {stage} holds {count} layer(s), too few for vpp={vpp} virtual chunks"
            )
        base, extra = divmod(count, vpp)
        sizes.append([base + (v < extra) for v in range(vpp)])
    ranges: list[list[range]] = [[] for _ in range(pp)]
    start = 0
    for v in range(vpp):
        for stage in range(pp):
            ranges[stage].append(range(start, start + sizes[stage][v]))
            start += sizes[stage][v]
    return tuple(tuple(chunks) for chunks in ranges)


def describe_layout(model: ModelSpec, plan: ParallelPlan) -> str:
    """The pipeline layout in one line: layers per stage, runs of equal stages folded."""
    counts = stage_layer_counts(model, plan)
    runs: list[str] = []
    i = 0
    while i < len(counts):
        j = i
        while j + 1 < len(counts) and counts[j + 1] == counts[i]:
            j += 1
        runs.append(f"{counts[i]} x {j - i + 1}" if j > i else str(counts[i]))
        i = j + 1
    how = "even"
    if plan.first_stage_layers is not None or plan.last_stage_layers is not None:
        how = "first/last stage layers as given"
    elif len(set(counts)) > 1:
        how = "balanced: embedding and loss count one layer each"
    chunks = f", {plan.vpp} virtual chunks per stage" if plan.vpp > 1 else ""
    return f"{plan.pp} stage(s) of {', '.join(runs)} layers ({how}){chunks}"
