"""One pipeline step of a stage as its own small ET, and what the step's tail costs.

The fast evaluation tier (``engine.fast_step``) times a plan without generating its whole ET:
every forward or backward step of a stage runs the same nodes for every micro-batch, so it
times each distinct step once, from a *segment* (the nodes ``models._generate`` emits between
the step's receive and its send, by the same code), and replaces the events between steps by
the pipeline schedule's recurrence. A segment records where the gradients of each block it
finishes become ready (the gradient reductions hang off those nodes in the full ET), and
``StageTail`` what the stage runs after its last step: the sizes of the optimizer step, the
distributed optimizer's gathers and the tied-embedding exchange.

``segment_key`` (with the plan's part, ``segment_plan_key``, computed once) names what a
segment depends on, so steps of different plans and stages that emit the same nodes share one
timing: two keys are equal only if the segments are.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from trainsim.chakra_et import CollectiveCommType, ETGraph, new_metadata
from trainsim.models._et_builder import ETBuilder
from trainsim.models._generate import Granularity, _RankProgram
from trainsim.models._plan import ParallelPlan, stage_layer_ranges
from trainsim.models._ranks import RankLayout
from trainsim.models._spec import ModelSpec

__all__ = [
    "Segment",
    "StageTail",
    "segment_key",
    "segment_plan_key",
    "stage_segment",
    "stage_tail",
]

#: Plan fields a segment's nodes depend on (besides the model, the stage's layers and
#: whether it holds the embedding or the logits); ZeRO-3's gathers add ``_ZERO3_FIELDS``.
_SEGMENT_FIELDS = (
    "tp",
    "cp",
    "ep",
    "sequence_parallel",
    "micro_batch_size",
    "recompute",
    "attention",
    "overlap_tp_comm",
    "grad_accumulation_fusion",
    "gemm_bias_fusion",
    "pipeline_scatter_gather",
    "dtype",
    "fp8_recipe",
)
_ZERO3_FIELDS = ("zero_stage", "dp", "overlap_param_gather")


@dataclass(frozen=True)
class Segment:
    """The nodes of one pipeline step, and the gradient reductions it makes ready.

    ``ready`` lists, in issue order, ``(node id, ((group kind, bytes), ...))``: once that
    node ends, the reductions of one block's gradients may start. ``group_kinds`` maps each
    process-group name the graph's collectives use to its kind.
    """

    graph: ETGraph
    group_kinds: dict[str, str]
    ready: tuple[tuple[int, tuple[tuple[str, int], ...]], ...]
    #: the node the stage's next step follows (-1: none); its sends also wait for the
    #: overlapped TP collectives still running
    last: int = -1
    #: position in ``ready`` of the first layer's entry (-1: no layer's gradients)
    first_layer_ready: int = -1


@dataclass(frozen=True)
class StageTail:
    """What a stage runs after its last pipeline step, sized as the full ET sizes it."""

    #: bytes of one pipeline send (an activation, or its gradient)
    activation_bytes: int
    optimizer_bytes: int
    #: (group kind, bytes per rank) of the distributed optimizer's weight all-gathers
    param_gathers: tuple[tuple[str, int], ...]
    #: bytes each way of the tied embedding's gradient exchange with the other end stage
    exchange_bytes: int
    #: the gradient reduction's collective: all-reduce, or reduce-scatter when sharded
    grad_op: str


class _SegmentProgram(_RankProgram):
    """A rank program that records where gradients become ready instead of reducing them."""

    def __init__(self, builder: ETBuilder) -> None:
        super().__init__(builder)
        self.ready: list[tuple[int, tuple[tuple[str, int], ...]]] = []
        self.first_layer_ready = -1

    def _grad_sync(self, block: str, after: int, mb: int) -> None:
        if block.startswith("L") and self.first_layer_ready < 0:
            self.first_layer_ready = len(self.ready)
        self.ready.append((after, self.grad_sync_bytes(block)))


def _program(
    model: ModelSpec, plan: ParallelPlan, stage: int, granularity: Granularity
) -> _SegmentProgram:
    layout = RankLayout(plan)
    builder = ETBuilder(model, plan, layout, layout.rank_of(pp=stage), granularity, None)
    return _SegmentProgram(builder)


def stage_segment(
    model: ModelSpec,
    plan: ParallelPlan,
    stage: int,
    phase: str,
    chunk: int,
    *,
    granularity: Granularity = "layer",
    layers: int | None = None,
) -> Segment:
    """The nodes of ``stage``'s ``phase`` step of model chunk ``chunk`` (its last micro-batch,
    so that the gradients it finishes are recorded), after its receive when it has one;
    with ``layers``, of the chunk's first ``layers`` layers only."""
    program = _program(model, plan, stage, granularity)
    if layers is not None:
        held = program.chunks[chunk]
        program.chunks = tuple(
            range(r.start, r.start + layers) if c == chunk else r
            for c, r in enumerate(program.chunks)
        )
        if layers > len(held):
            raise ValueError(f"layers={layers}: chunk {chunk} of stage {stage} holds {len(held)}")
    mb = plan.num_micro_batches - 1
    gchunk = chunk * plan.pp + stage
    prev = -1
    if gchunk > 0 if phase == "fwd" else gchunk < plan.pp * plan.vpp - 1:
        prev = program._received(phase, mb, chunk, -1)
    attrs: dict[str, object] = {"phase": phase, "micro_batch": mb, "chunk": chunk}
    last = program.body(phase, mb, chunk, prev, attrs)
    builder = program.b
    metadata = new_metadata(attrs={"generator": "trainsim.models", "dtype": plan.dtype})
    groups = {str(pg): kind for pg, kind in builder.groups.items()}
    graph = ETGraph(metadata, builder.nodes)
    return Segment(graph, groups, tuple(program.ready), last, program.first_layer_ready)


def stage_tail(model: ModelSpec, plan: ParallelPlan, stage: int) -> StageTail:
    """The sizes of what ``stage`` runs after its last pipeline step."""
    program = _program(model, plan, stage, "layer")
    sharded = program.grad_type == int(CollectiveCommType.REDUCE_SCATTER)
    return StageTail(
        activation_bytes=program.act_bytes,
        optimizer_bytes=program.optimizer_bytes(),
        param_gathers=program.param_gather_bytes(),
        exchange_bytes=program.embedding_exchange_bytes(),
        grad_op="reduce_scatter" if sharded else "all_reduce",
    )


def segment_plan_key(model_id: str, plan: ParallelPlan, granularity: Granularity) -> str:
    """The part of ``segment_key`` that every step of one plan shares (``model_id``: a name
    of the model that changes with any of its fields, such as a digest of its JSON)."""
    fields = _SEGMENT_FIELDS + (_ZERO3_FIELDS if plan.zero_stage >= 3 else ())
    return json.dumps([model_id, [getattr(plan, name) for name in fields], granularity])


def segment_key(
    plan_key: str,
    model: ModelSpec,
    plan: ParallelPlan,
    stage: int,
    phase: str,
    chunk: int,
    layers: int | None = None,
) -> tuple[object, ...]:
    """A key equal for two steps exactly when ``stage_segment`` emits the same nodes for them
    (``plan_key``: the plan's ``segment_plan_key``; ``layers`` as ``stage_segment``'s)."""
    held = stage_layer_ranges(model, plan)[stage][chunk]
    layers_held = held if layers is None else held[:layers]
    gchunk = chunk * plan.pp + stage
    last_chunk = plan.pp * plan.vpp - 1
    received = gchunk > 0 if phase == "fwd" else gchunk < last_chunk
    return (
        plan_key,
        phase,
        tuple(model.layer_is_moe(layer) for layer in layers_held),
        gchunk == 0,
        gchunk == last_chunk,
        last_chunk > 0,
        received,
    )
