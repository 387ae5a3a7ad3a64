"""The search space of a parallelism sweep: which plans to try, and which of them are valid.

A ``SearchSpace`` lists the values each plan dimension may take; ``enumerate_plans`` walks their
product for one model and GPU count and keeps the plans that the model admits (``check_plan``):
``dp`` is what the GPU count leaves after ``tp x pp x cp``. When ``num_layers`` does not split
evenly over ``pp`` stages, the plan gives the first and last stages fewer layers (Llama 3 405B
runs 126 layers on 16 stages as 7 + 14 x 8 + 7) rather than being dropped.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from trainsim.models import ModelsError, ModelSpec, ParallelPlan, Recompute, check_plan

__all__ = ["Constraints", "SearchSpace", "SweepConfigError", "enumerate_plans", "load_space"]


class SweepConfigError(ValueError):
    """A search space, objective or constraint to fix; the message names the field and values."""


ZeroStage = Literal[0, 1, 2, 3]
_ZERO_DEFAULT: list[ZeroStage] = [0, 1]
_RECOMPUTE_DEFAULT: list[Recompute] = ["none", "selective", "full"]
_CLUSTERS_DEFAULT: list[str | None] = [None]


class SearchSpace(BaseModel):
    """Values every plan dimension may take; the sweep tries their product.

    ``global_batch_size`` fixes sequences per step for every plan (so step times compare);
    None means one micro-batch per data-parallel rank. ``clusters`` optionally varies the
    built-in cluster preset (None: the device's own).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    tp: list[int] = Field(default_factory=lambda: [1, 2, 4, 8], min_length=1)
    pp: list[int] = Field(default_factory=lambda: [1, 2, 4, 8, 16], min_length=1)
    cp: list[int] = Field(default_factory=lambda: [1], min_length=1)
    ep: list[int] = Field(default_factory=lambda: [1], min_length=1)
    vpp: list[int] = Field(default_factory=lambda: [1], min_length=1)
    micro_batch_size: list[int] = Field(default_factory=lambda: [1, 2], min_length=1)
    zero_stage: list[ZeroStage] = Field(default_factory=lambda: _ZERO_DEFAULT[:], min_length=1)
    recompute: list[Recompute] = Field(default_factory=lambda: _RECOMPUTE_DEFAULT[:], min_length=1)
    sequence_parallel: list[bool] = Field(default_factory=lambda: [True], min_length=1)
    global_batch_size: int | None = Field(None, ge=1)
    uneven_stages: bool = Field(True, description="allow fewer layers on first/last stages")
    overlap_tp_comm: bool = False
    dtype: Literal["bf16", "fp16", "fp8"] = "bf16"
    clusters: list[str | None] = Field(default_factory=lambda: _CLUSTERS_DEFAULT[:], min_length=1)

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


def _stage_split(model: ModelSpec, pp: int, vpp: int, uneven: bool) -> dict[str, int] | None:
    """``first/last_stage_layers`` for ``pp`` stages ({} when even; None when impossible)."""
    layers = model.num_layers
    if layers % (pp * vpp) == 0:
        return {}
    if not uneven or vpp > 1 or pp < 3:
        return None
    # The middle stages take the rounded-up share; first and last split what is left.
    per = -(-layers // pp)
    rest = layers - per * (pp - 2)
    if rest < 2 or rest % 2:
        return None
    return {"first_stage_layers": rest // 2, "last_stage_layers": rest // 2}


def enumerate_plans(
    model: ModelSpec, gpus: int, space: SearchSpace
) -> tuple[list[tuple[ParallelPlan, str | None]], int]:
    """Every (plan, cluster) of ``space`` valid for ``model`` on ``gpus``, and how many were not."""
    plans: list[tuple[ParallelPlan, str | None]] = []
    invalid = 0
    values = [getattr(space, name) for name in _DIMENSIONS]
    for combo in itertools.product(*values):
        fields = dict(zip(_DIMENSIONS, combo, strict=True))
        tp, pp, cp, vpp = fields["tp"], fields["pp"], fields["cp"], fields["vpp"]
        split = _stage_split(model, pp, vpp, space.uneven_stages)
        if tp == 1 and fields["sequence_parallel"]:
            # Sequence parallelism without tensor parallelism is the plan without it: try once.
            if False in space.sequence_parallel:
                continue
            fields["sequence_parallel"] = False
        if gpus % (tp * pp * cp) or split is None:
            invalid += len(space.clusters)
            continue
        try:
            plan = ParallelPlan.for_gpus(
                gpus,
                **fields,
                **split,
                global_batch_size=space.global_batch_size,
                overlap_tp_comm=space.overlap_tp_comm and tp > 1,
                dtype=space.dtype,
            )
            check_plan(model, plan)
        except ModelsError:
            invalid += len(space.clusters)
            continue
        plans.extend((plan, cluster) for cluster in space.clusters)
    return plans, invalid
