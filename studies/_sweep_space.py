"""The search space of a parallelism sweep: which plans to try, and which of them are valid.

A ``SearchSpace`` lists the values each plan dimension may take; ``enumerate_plans`` walks their
product for one model and GPU count and keeps the plans that the model admits (``check_plan``):
``dp`` is what the GPU count leaves after ``tp x pp x cp``. When ``num_layers`` does not split
evenly over ``pp`` stages, the plan takes the balanced layout of ``models.stage_layer_counts``
(Llama 3 405B runs 126 layers on 16 stages as 7 + 14 x 8 + 7) rather than being dropped. The
plans it drops are counted by the reason their check gave.

Every plan of a space runs one global batch, so that step times compare: the space's
``global_batch_size``, or else the one ``resolve_global_batch`` chooses (the fewest sequences,
a power of two, holding ``DEFAULT_BATCH_TOKENS`` tokens).
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from trainsim.models import (
    InvalidPlanError,
    ModelsError,
    ModelSpec,
    ParallelPlan,
    Recompute,
    check_plan,
)

__all__ = [
    "DEFAULT_BATCH_TOKENS",
    "Constraints",
    "GlobalBatch",
    "SearchSpace",
    "SweepConfigError",
    "enumerate_plans",
    "invalid_reason",
    "load_space",
    "resolve_global_batch",
    "typical_global_batch",
]

#: Tokens per step a sweep aims at when its space fixes no global batch: 2**22 (4.2M), the
#: batch of Llama 2 at every size (Touvron et al. 2023, Table 1), near GPT-3 175B's 3.2M and
#: Llama 3 405B's first stage (4M).
DEFAULT_BATCH_TOKENS = 2**22


class SweepConfigError(ValueError):
    """A search space, objective or constraint to fix; the message names the field and values."""


ZeroStage = Literal[0, 1, 2, 3]
_ZERO_DEFAULT: list[ZeroStage] = [0, 1, 2]
_RECOMPUTE_DEFAULT: list[Recompute] = ["none", "selective", "full"]
_CLUSTERS_DEFAULT: list[str | None] = [None]


class SearchSpace(BaseModel):
    """Values every plan dimension may take; the sweep tries their product.

    ``global_batch_size`` fixes sequences per step for every plan (so step times compare);
    None lets ``resolve_global_batch`` choose one for the whole space. ``clusters`` optionally
    varies the built-in cluster preset (None: the device's own).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    tp: list[int] = Field(default_factory=lambda: [1, 2, 4, 8], min_length=1)
    pp: list[int] = Field(default_factory=lambda: [1, 2, 4, 8, 16], min_length=1)
    cp: list[int] = Field(default_factory=lambda: [1, 2], min_length=1)
    ep: list[int] = Field(default_factory=lambda: [1], min_length=1)
    vpp: list[int] = Field(
        default_factory=lambda: [1, 2, 4],
        min_length=1,
        description="virtual chunks per pipeline stage (interleaving depths); a plan without "
        "pipeline parallelism is tried with 1 only",
    )
    micro_batch_size: list[int] = Field(default_factory=lambda: [1, 2], min_length=1)
    zero_stage: list[ZeroStage] = Field(default_factory=lambda: _ZERO_DEFAULT[:], min_length=1)
    recompute: list[Recompute] = Field(default_factory=lambda: _RECOMPUTE_DEFAULT[:], min_length=1)
    sequence_parallel: list[bool] = Field(default_factory=lambda: [True], min_length=1)
    global_batch_size: int | None = Field(None, ge=1)
    uneven_stages: bool = Field(
        True,
        description="allow layers that pp x vpp does not divide (the plan's balanced layout: "
        "embedding and loss count one layer each toward the first and last stage)",
    )
    overlap_tp_comm: list[bool] = Field(
        default_factory=lambda: [False, True],
        min_length=1,
        description="Transformer Engine's TP communication overlap; it needs tp > 1 with "
        "sequence parallelism (as Megatron), so other plans are tried without it only",
    )
    dtype: Literal["bf16", "fp16", "fp8"] = "bf16"
    clusters: list[str | None] = Field(default_factory=lambda: _CLUSTERS_DEFAULT[:], min_length=1)

    @field_validator("overlap_tp_comm", mode="before")
    @classmethod
    def _one_or_more(cls, value: Any) -> Any:
        # A single true/false (the field's former type) is a one-value list.
        return [value] if isinstance(value, bool) else value

    @field_validator("tp", "pp", "cp", "ep", "vpp", "micro_batch_size")
    @classmethod
    def _positive(cls, values: list[int]) -> list[int]:
        bad = [v for v in values if v < 1]
        if bad:
            raise ValueError(f"values must be integers >= 1, got {bad}")
        return sorted(set(values))

    def size(self) -> int:
        """Number of combinations before any check (an upper bound on the plans tried)."""
        total = len(self.clusters)
        for name in _DIMENSIONS:
            total *= len(getattr(self, name))
        return total


#: Plan dimensions the space lists values for, in the order plans are enumerated.
_DIMENSIONS = (
    "tp",
    "pp",
    "cp",
    "ep",
    "vpp",
    "micro_batch_size",
    "zero_stage",
    "recompute",
    "sequence_parallel",
    "overlap_tp_comm",
)


class Constraints(BaseModel):
    """Limits a plan must meet to count: memory is checked before simulating, the rest after."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_memory_gib: float | None = Field(
        None, gt=0.0, description="per-GPU memory cap (default: the device's HBM)"
    )
    max_step_time_s: float | None = Field(None, gt=0.0)
    min_tokens_per_s: float | None = Field(None, gt=0.0)
    min_mfu: float | None = Field(None, gt=0.0, le=1.0)


def _validation_message(kind: str, exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    msg = str(err["msg"]).removeprefix("Value error, ")
    return f"{kind}: {loc}={err.get('input')!r}: {msg}"


def space_from_mapping(data: Any) -> SearchSpace:
    """Validate a mapping as a ``SearchSpace``; errors name the field and the allowed values."""
    try:
        return SearchSpace.model_validate(data or {})
    except ValidationError as exc:
        raise SweepConfigError(_validation_message("search space", exc)) from None


def constraints_from_mapping(data: Any) -> Constraints:
    """Validate a mapping as ``Constraints``; errors name the field and the allowed range."""
    try:
        return Constraints.model_validate(data or {})
    except ValidationError as exc:
        raise SweepConfigError(_validation_message("constraints", exc)) from None


def load_space(path: str | Path) -> SearchSpace:
    """Read a search space from a YAML or JSON file (keys are ``SearchSpace`` fields)."""
    source = Path(path)
    try:
        data = yaml.safe_load(source.read_text())
    except yaml.YAMLError as exc:
        raise SweepConfigError(f"{source}: not valid YAML/JSON: {exc}".splitlines()[0]) from None
    if data is not None and not isinstance(data, dict):
        raise SweepConfigError(f"{source}: a search space is a mapping of plan fields to lists")
    try:
        return space_from_mapping(data)
    except SweepConfigError as exc:
        raise SweepConfigError(f"{source}: {exc}") from None


@dataclass(frozen=True)
class GlobalBatch:
    """The global batch every plan of a sweep runs, and why it is that one."""

    sequences: int  # per optimizer step, for every plan
    tokens: int  # sequences x the model's seq_len
    chosen: bool  # True when the space gave none and the sweep chose it
    reason: str  # "given (...)" or how it was chosen, for people reading the report


def _combos(model: ModelSpec, space: SearchSpace) -> Iterator[dict[str, Any]]:
    """Plan fields (``dp`` and the global batch aside) of every combination of ``space``."""
    values = [getattr(space, name) for name in _DIMENSIONS]
    for combo in itertools.product(*values):
        fields: dict[str, Any] = dict(zip(_DIMENSIONS, combo, strict=True))
        tp = fields["tp"]
        if tp == 1 and fields["sequence_parallel"]:
            # Sequence parallelism without tensor parallelism is the plan without it: try once.
            if False in space.sequence_parallel:
                continue
            fields["sequence_parallel"] = False
        if fields["vpp"] > 1 and fields["pp"] == 1 and 1 in space.vpp:
            # Interleaving needs a pipeline: without one it is the plan with vpp=1, tried once
            # (without 1 in the space it is counted invalid by the plan's own check).
            continue
        # Layers that pp x vpp does not divide take the plan's balanced layout
        # (models.stage_layer_counts); with uneven_stages off such a plan is invalid.
        fields["even_stages_only"] = not space.uneven_stages
        overlaps = tp > 1 and fields["sequence_parallel"]
        if fields["overlap_tp_comm"] and not overlaps and False in space.overlap_tp_comm:
            # Nothing to overlap without TP and sequence parallelism: that plan is the one
            # without overlap, which the space also holds; tried once.
            continue
        fields["dtype"] = space.dtype
        yield fields


def _build(
    model: ModelSpec, gpus: int, fields: dict[str, Any], global_batch_size: int
) -> ParallelPlan:
    """The plan of ``fields`` on ``gpus``, checked against ``model`` (raises ``ModelsError``)."""
    plan_fields = {k: v for k, v in fields.items() if k != "even_stages_only"}
    plan = ParallelPlan.for_gpus(gpus, **plan_fields, global_batch_size=global_batch_size)
    check_plan(model, plan)
    chunks = plan.pp * plan.vpp
    if fields.get("even_stages_only") and model.num_layers % chunks:
        raise InvalidPlanError(
            f"num_layers={model.num_layers} is not divisible by pp*vpp={plan.pp}*{plan.vpp}="
            f"{chunks}"
        )
    return plan


def _batch_step(gpus: int, fields: dict[str, Any]) -> int | None:
    """The smallest global batch the plan of ``fields`` can run; its valid batches are multiples.

    ``micro_batch_size x dp`` sequences per micro-batch round (the interleaved schedule, as
    Megatron-Core's schedule table runs it, takes any number of micro-batches). None when
    ``gpus`` does not split over ``tp x pp x cp``.
    """
    model_parallel = fields["tp"] * fields["pp"] * fields["cp"]
    if gpus % model_parallel:
        return None
    step: int = fields["micro_batch_size"] * (gpus // model_parallel)
    return step


def _typical_batch(seq_len: int) -> tuple[int, int]:
    """Sequences holding ``DEFAULT_BATCH_TOKENS``, and the power of two at or above that."""
    target = -(-DEFAULT_BATCH_TOKENS // seq_len)
    return target, 1 << max(target - 1, 0).bit_length()


def typical_global_batch(seq_len: int, step: int) -> int:
    """The global batch a real run would fix for one plan: ``DEFAULT_BATCH_TOKENS`` tokens.

    The fewest sequences, a power of two, holding that many tokens when the plan's
    ``micro_batch_size x dp`` (``step``) splits it; otherwise the fewest multiple of ``step``
    holding them.
    """
    target, power = _typical_batch(seq_len)
    if power % step == 0:
        return power
    return step * -(-target // step)


def resolve_global_batch(model: ModelSpec, gpus: int, space: SearchSpace) -> GlobalBatch:
    """The global batch every plan of ``space`` runs: the space's, or one chosen for all of them.

    The chosen one is what a real run would fix before choosing its parallelism: the fewest
    sequences, rounded up to a power of two, that hold at least ``DEFAULT_BATCH_TOKENS``
    tokens. A plan that cannot split it (micro_batch_size x dp does not divide it) is invalid
    for that reason, as it would be in the run. Only when no plan can split it does the batch
    grow to the smallest multiple that every valid plan divides.
    """
    if space.global_batch_size is not None:
        sequences = space.global_batch_size
        return GlobalBatch(sequences, sequences * model.seq_len, False, "given (global_batch_size)")
    target, power = _typical_batch(model.seq_len)
    common = 1
    splittable = False
    for fields in _combos(model, space):
        step = _batch_step(gpus, fields)
        if step is None:
            continue
        try:
            _build(model, gpus, fields, step)
        except ModelsError:
            continue
        common = math.lcm(common, step)
        splittable = splittable or power % step == 0
    typical = (
        f"{DEFAULT_BATCH_TOKENS / 1e6:.1f}M tokens or more, a typical LLM pre-training batch "
        "(Llama 2: 4M, GPT-3 175B: 3.2M)"
    )
    if splittable:
        reason = (
            f"chosen (none given): the fewest sequences, a power of two, holding {typical}; "
            "plans that cannot split it are invalid; global_batch_size (--global-batch) sets "
            "another"
        )
        return GlobalBatch(power, power * model.seq_len, True, reason)
    sequences = common * -(-target // common)
    reason = (
        f"chosen (none given): no plan splits {power} sequences, so the fewest holding "
        f"{typical} that every plan's micro_batch_size x dp divides (lcm {common}); "
        "global_batch_size (--global-batch) sets another"
    )
    return GlobalBatch(sequences, sequences * model.seq_len, True, reason)


# ``field=value`` (with products such as ``pp*vpp=4*1=4``) and numbers in parentheses: what
# differs between two plans that fail the same check.
_VALUES = re.compile(r"=[^\s,;()]+")
_NUMBERS_IN_PARENS = re.compile(r"\s*\((?:\d+|[a-z_]+(?:, [a-z_]+)*)\)")


def invalid_reason(exc: ModelsError) -> str:
    """The check a plan failed, without its numbers: plans failing alike share one reason.

    ``num_heads=8 is not divisible by tp=3`` becomes ``num_heads is not divisible by tp``.
    """
    message = str(exc).splitlines()[0].removeprefix("plan: ")
    return _NUMBERS_IN_PARENS.sub("", _VALUES.sub("", message)).strip()


def enumerate_plans(
    model: ModelSpec, gpus: int, space: SearchSpace
) -> tuple[list[tuple[ParallelPlan, str | None]], dict[str, int]]:
    """Every (plan, cluster) of ``space`` valid for ``model`` on ``gpus``, and why others were not.

    All plans run the global batch of ``resolve_global_batch``. The second item counts the
    invalid (plan, cluster) pairs by the reason of the first check each plan failed, most
    frequent first.
    """
    batch = resolve_global_batch(model, gpus, space).sequences
    plans: list[tuple[ParallelPlan, str | None]] = []
    reasons: Counter[str] = Counter()
    for fields in _combos(model, space):
        step = _batch_step(gpus, fields)
        try:
            # The plan at its own smallest batch first: a plan whose shape fails a check is
            # counted under that check, not under the batch it would then be given.
            if step is not None:
                _build(model, gpus, fields, step)
            plan = _build(model, gpus, fields, batch)
        except ModelsError as exc:
            reasons[invalid_reason(exc)] += len(space.clusters)
            continue
        plans.extend((plan, cluster) for cluster in space.clusters)
    return plans, dict(sorted(reasons.items(), key=lambda item: (-item[1], item[0])))
