"""Chakra ET generation: one graph per rank class (pipeline stage), or one per rank.

Every data/tensor/context/expert-parallel peer of a pipeline stage runs the same program on
its own shard, so one representative rank per stage (its coordinates all zero except ``pp``)
describes the stage: these are the *rank classes*. Expert shards do not form classes of their
own because the plan requires ``num_experts % ep == 0`` and routing is taken as balanced.

Nodes are written in the order the pipeline schedule issues them (1F1B, or Megatron's
interleaved 1F1B with ``vpp`` model chunks per rank), with node ids ascending in that order.
Every node carries ``is_cpu_op = false`` (ASTRA-sim reads it) and only ``data_deps``:

* ``COMP_NODE`` — ``num_ops`` (FLOPs), ``tensor_size`` (bytes moved), and string attributes
  ``stream`` (``"compute"``), ``phase`` (``fwd``/``bwd``/``recompute``/``optimizer``) plus
  ``micro_batch``, ``chunk``, ``layer`` (int, -1 outside layers) and, at op granularity, ``op``.
  Backward nodes carry ``recompute_ops`` when recomputation is folded in (layer granularity).
  GEMM work carries ``gemm_shape`` ``[m, n, k]`` for the device's efficiency curve: the op's
  own at op granularity, the layer's FLOP-dominant GEMM at layer granularity.
* ``COMM_COLL_NODE`` — ``comm_type``, ``comm_size`` (bytes per rank, ASTRA-sim's convention:
  the full buffer for all-reduce/reduce-scatter/all-to-all, the per-rank shard for all-gather),
  ``pg_name`` (the process-group id as a string) and ``stream``, the group kind (``tp``,
  ``cp``, ``dp_cp``, ``ep``, ``edp``). Collectives over a group of one rank are left out.
  Both granularities issue the same collectives: one per attention or MLP block (each pays
  its own start-up), and with full recomputation the backward repeats the forward's.
* ``COMM_SEND_NODE`` / ``COMM_RECV_NODE`` between pipeline stages with ``comm_src``,
  ``comm_dst``, ``comm_size`` and ``comm_tag``; the tag is the same on both ends:
  ``1 + (direction * micro_batches + micro_batch) * chunks + chunk_of_receiver``. With TP, a
  send carries 1/tp of the activation: the shard sequence parallelism holds, or, without it,
  Megatron's scatter/gather (``pipeline_scatter_gather``), whose receiver all-gathers it.

``GlobalMetadata`` attributes: ``generator`` ("trainsim.models"), ``model`` and ``plan`` (JSON
of the ModelSpec and ParallelPlan), ``rank``, ``stage``, ``rank_class`` ("stage<i>"),
``world_size``, ``granularity``, ``dtype`` (of the compute), and ``process_groups``: a JSON object
``{"<pg id>": {"kind": "<kind>", "ranks": [..]}}`` for every group the graph's collectives
name (the engine reads this). ``write_per_rank`` also writes ``comm_groups.json``,
``{"<pg id>": [ranks]}``, the comm-group file ASTRA-sim takes; it generates every rank in
turn, so it is meant for worlds of up to a few thousand ranks.

Dependencies: compute nodes form one chain per rank in schedule order; a tensor-parallel
collective sits on that chain (blocking, as without ``overlap_tp_comm``) or, with
``overlap_tp_comm``, beside the next compute node, the one after waiting for it. At op
granularity that places each exchange beside the GEMM Transformer Engine overlaps it with
(pipelined reduce-scatter chunks after the row-parallel GEMMs, data and weight gradients as
two nodes; see ``models._layer_program``); at layer granularity beside the layer, which hides
the chunks' pipeline fill and drain, so rows with TP overlap are best predicted at op
granularity. Data-parallel
gradient collectives hang off the backward node of their layer in the last micro-batch (with
``overlap_grad_reduce``; otherwise after the whole backward) and the optimizer waits for all of
them; ZeRO-3 gathers each layer's weights before its forward and backward and reduce-scatters
its gradients after every micro-batch. A receive follows the previous compute node; with
``blocking_p2p`` (Megatron's 1F1B exchanges) nothing the stage issues after a send starts
before the send ends (the collectives before the next compute node and that node; receives,
posted by the same batched exchange, excepted), and the optimizer waits for the last ones.
With pipeline stages and tied embeddings, the first and last stage exchange their embedding
gradients (``embedding.grad.send``/``recv``, the two-rank all-reduce Megatron-LM runs after
the data-parallel reduction; tag ``2 m v + 1``) before their optimizer.

Approximations: context parallelism is an all-gather of keys and values per layer forward and
a reduce-scatter of their gradients backward (Megatron overlaps a ring of send/receives);
expert parallelism is one all-to-all to dispatch and one to combine; the vocabulary-parallel
loss reductions (a few bytes per token) are left out; gradients are reduced in fp32 (4 bytes
per weight).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from trainsim.chakra_et import (
    ETGraph,
    new_metadata,
    save,
)
from trainsim.models._device import DeviceSpec
from trainsim.models._errors import ModelsError
from trainsim.models._et_builder import COMP, ETBuilder
from trainsim.models._flops import (
    embedding_cost,
    logits_cost,
    optimizer_cost,
)
from trainsim.models._layer_program import _AG, _LayerProgram
from trainsim.models._memory import local_params
from trainsim.models._pipeline import pipeline_schedule
from trainsim.models._plan import ParallelPlan, check_plan
from trainsim.models._ranks import RankLayout
from trainsim.models._roofline import ROOFLINE_ATTR, encode_roofline
from trainsim.models._spec import ModelSpec

__all__ = [
    "Granularity",
    "generate_rank",
    "generate_rank_classes",
    "pipeline_schedule",
    "write_per_rank",
    "write_rank_classes",
]

Granularity = Literal["layer", "op"]

_GRAD_BYTES = 4


class _RankProgram(_LayerProgram):
    """Emits one rank's training step: the pipeline schedule, then gradient sync and optimizer."""

    def run(self) -> None:
        b, plan = self.b, self.plan
        p, v, m = plan.pp, plan.vpp, plan.num_micro_batches
        c = b.coord
        prev_stage = b.layout.rank_of(tp=c.tp, cp=c.cp, dp=c.dp, pp=(self.stage - 1) % p)
        next_stage = b.layout.rank_of(tp=c.tp, cp=c.cp, dp=c.dp, pp=(self.stage + 1) % p)
        last_chunk = p * v - 1
        prev = -1
        for phase, mb, chunk in pipeline_schedule(p, self.stage, m, v):
            gchunk = chunk * p + self.stage
            attrs: dict[str, object] = {"phase": phase, "micro_batch": mb, "chunk": chunk}
            fwd = phase == "fwd"
            if gchunk > 0 if fwd else gchunk < last_chunk:
                peer = prev_stage if fwd else next_stage
                tag = 1 + ((0 if fwd else 1) * m + mb) * v + chunk
                recv = b.p2p(
                    f"recv.{phase}.mb{mb}.c{chunk}", False, peer, self.act_bytes, tag, prev
                )
                prev = self._received(phase, mb, chunk, recv)
            prev = self.body(phase, mb, chunk, prev, attrs)
            if gchunk < last_chunk if fwd else gchunk > 0:
                peer = next_stage if fwd else prev_stage
                receiver = (gchunk + 1) // p if fwd else (gchunk - 1) // p
                tag = 1 + ((0 if fwd else 1) * m + mb) * v + receiver
                send = b.p2p(f"send.{phase}.mb{mb}.c{chunk}", True, peer, self.act_bytes, tag, prev)
                if plan.blocking_p2p:
                    b.block_until_next_compute([send])
        self._optimizer(prev)

    def _received(self, phase: str, mb: int, chunk: int, recv: int) -> int:
        """What follows a receive: Megatron's all-gather of a scattered activation, if any."""
        if not self.gather_received:
            return recv
        return self.b.coll(f"recv.{phase}.mb{mb}.c{chunk}.tp_ag", "tp", _AG, self.act_bytes, [recv])

    def body(self, phase: str, mb: int, chunk: int, prev: int, attrs: dict[str, object]) -> int:
        """One pipeline step's compute after ``prev``, between its receive and its send.

        The embedding, the chunk's layers and the logits as the stage holds them, and the
        gradient reductions whose weights the step finishes (``_grad_sync``).
        """
        b, plan, m = self.b, self.plan, self.plan.num_micro_batches
        gchunk = chunk * plan.pp + self.stage
        last_chunk = plan.pp * plan.vpp - 1
        layer_fn = self._layer_coarse if b.gran == "layer" else self._layer_fine
        syncs = mb == m - 1 or plan.zero_stage >= 3
        if phase == "fwd":
            if gchunk == 0:
                size = embedding_cost(self.model, plan).fwd_bytes
                prev = b.comp(f"embedding.fwd.mb{mb}", 0, size, prev, {**attrs, "layer": -1})
            for layer in self.chunks[chunk]:
                prev = layer_fn(layer, "fwd", prev, attrs)
            if gchunk == last_chunk:
                prev = self._logits("fwd", mb, prev, attrs)
            return prev
        if gchunk == last_chunk:
            prev = self._logits("bwd", mb, prev, attrs)
            has_output = not self.model.tied_embeddings or last_chunk > 0
            if has_output and syncs:
                self._grad_sync("output", prev, mb)
        for layer in reversed(self.chunks[chunk]):
            prev = layer_fn(layer, "bwd", prev, attrs)
            if syncs:
                self._grad_sync(f"L{layer}", prev, mb)
        if gchunk == 0:
            size = embedding_cost(self.model, plan).bwd_bytes
            prev = b.comp(f"embedding.bwd.mb{mb}", 0, size, prev, {**attrs, "layer": -1})
            if syncs:
                self._grad_sync("embedding", prev, mb)
        return prev

    def _logits(self, phase: str, mb: int, prev: int, attrs: dict[str, object]) -> int:
        proj, loss = logits_cost(self.model, self.plan)
        fwd = phase == "fwd"
        flops = proj.fwd_flops if fwd else proj.bwd_flops
        proj_bytes = proj.fwd_bytes if fwd else proj.bwd_bytes
        loss_bytes = loss.fwd_bytes if fwd else loss.bwd_bytes
        # The projection is a GEMM, the loss memory-bound: cost them one after the other.
        roofline = encode_roofline(
            [("gemm", flops, proj_bytes, proj.gemm_shape), ("vector", 0, loss_bytes, None)]
        )
        extra: dict[str, object] = {"layer": -1, ROOFLINE_ATTR: roofline}
        if proj.gemm_shape is not None:
            extra["gemm_shape"] = proj.gemm_shape
        size = proj_bytes + loss_bytes
        return self.b.comp(f"logits.{phase}.mb{mb}", flops, size, prev, {**attrs, **extra})

    def _grad_sync(self, block: str, after: int, mb: int) -> None:
        """Gradient reduction of one block's weights, as soon as its backward is done.

        ``block`` is ``L<layer>``, ``embedding`` or ``output``.
        """
        if not (self.plan.overlap_grad_reduce or self.plan.zero_stage >= 3):
            self.deferred.append((block, mb))  # issued after the whole backward instead
            return
        self._emit_grad_sync(block, after, mb)

    def grad_sync_bytes(self, block: str) -> tuple[tuple[str, int], ...]:
        """(group kind, bytes) of the gradient reductions of one block's weights."""
        dense_local, expert_local = self._block_params(block)
        return (("dp_cp", _GRAD_BYTES * dense_local), ("edp", _GRAD_BYTES * expert_local))

    def _emit_grad_sync(self, block: str, after: int, mb: int) -> None:
        for kind, size in self.grad_sync_bytes(block):
            name = f"{block}.grad.{kind}.mb{mb}"
            nid = self.b.coll(name, kind, self.grad_type, size, [after])
            if nid != after:
                self.pending.append(nid)

    def _embedding_exchange(self, tail: int) -> list[int]:
        """The tied word embedding's gradient all-reduce between the first and last stage.

        Megatron-LM keeps the input embedding (first stage) and the output layer (last stage)
        equal by all-reducing their fp32 gradients once the data-parallel reduction is done.
        Between two ranks that is an exchange: each sends its whole gradient to the other,
        what NCCL's two-rank ring moves per direction too.
        """
        b, plan = self.b, self.plan
        size = self.embedding_exchange_bytes()
        if not size:
            return []
        c = b.coord
        peer = b.layout.rank_of(tp=c.tp, cp=c.cp, dp=c.dp, pp=plan.pp - 1 - self.stage)
        tag = 2 * plan.num_micro_batches * plan.vpp + 1  # after every pipeline tag
        send = b.p2p("embedding.grad.send", True, peer, size, tag, tail, self.pending)
        recv = b.p2p("embedding.grad.recv", False, peer, size, tag, tail)
        return [send, recv]

    def embedding_exchange_bytes(self) -> int:
        """Bytes each way of the tied embedding's gradient exchange (0: this stage has none)."""
        model, plan = self.model, self.plan
        if not model.tied_embeddings or plan.pp == 1 or self.stage not in (0, plan.pp - 1):
            return 0
        return _GRAD_BYTES * model.vocab_size * model.hidden_size // plan.tp

    def optimizer_bytes(self) -> int:
        """Bytes the optimizer step moves on this stage (the shard it updates)."""
        plan = self.plan
        dense, experts = local_params(self.model, plan, self.stage)
        updated = dense + experts
        if plan.optimizer_sharded:
            updated = -(-dense // (plan.dp * plan.cp)) + -(-experts // plan.expert_dp)
        # ZeRO-2/3 shard the gradients too; Megatron's distributed optimizer keeps them whole.
        held = updated if plan.zero_stage >= 2 else dense + experts
        return optimizer_cost(
            held, params_updated=updated, loss_scaling=plan.dtype == "fp16"
        ).fwd_bytes

    def param_gather_bytes(self) -> tuple[tuple[str, int], ...]:
        """(group kind, bytes per rank) of the distributed optimizer's weight all-gathers."""
        plan = self.plan
        if not plan.optimizer_sharded or plan.zero_stage >= 3:
            return ()
        dense, experts = local_params(self.model, plan, self.stage)
        return (
            ("dp_cp", 2 * (-(-dense // (plan.dp * plan.cp)))),
            ("edp", 2 * (-(-experts // plan.expert_dp))),
        )

    def _optimizer(self, tail: int) -> None:
        b = self.b
        for block, mb in self.deferred:
            self._emit_grad_sync(block, tail, mb)
        exchange = self._embedding_exchange(tail)
        attrs: dict[str, object] = {
            "num_ops": 0,
            "tensor_size": self.optimizer_bytes(),
            "stream": "compute",
            "phase": "optimizer",
            "layer": -1,
        }
        deps = (tail, *self.pending, *exchange, *b.drain_tp(), *b.drain_waits())
        nid = b._add("optimizer", COMP, attrs, deps)
        for kind, size in self.param_gather_bytes():
            b.coll(f"param_gather.{kind}", kind, _AG, size, [nid])


def generate_rank(
    model: ModelSpec,
    plan: ParallelPlan,
    rank: int,
    *,
    granularity: Granularity = "layer",
    device: DeviceSpec | None = None,
) -> ETGraph:
    """The ET of one rank's training step.

    With a ``device``, compute nodes also get ``duration_micros`` from its roofline and
    efficiency curve (rounded to whole microseconds, at least 1), for tools that do not
    evaluate ``num_ops`` themselves (ASTRA-sim with its roofline off); without one they
    carry 0 and the engine derives the time.
    """
    check_plan(model, plan)
    if granularity not in ("layer", "op"):
        raise ModelsError(f"granularity={granularity!r} must be 'layer' or 'op'")
    layout = RankLayout(plan)
    builder = ETBuilder(model, plan, layout, rank, granularity, device)
    _RankProgram(builder).run()
    stage = builder.coord.pp
    groups = {
        str(pg): {"kind": kind, "ranks": list(layout.group_ranks(kind, rank))}
        for pg, kind in sorted(builder.groups.items())
    }
    metadata = new_metadata(
        attrs={
            "generator": "trainsim.models",
            "model": model.model_dump_json(),
            "plan": plan.model_dump_json(),
            "rank": rank,
            "stage": stage,
            "rank_class": f"stage{stage}",
            "world_size": plan.num_gpus,
            "granularity": granularity,
            "dtype": plan.dtype,
            "process_groups": json.dumps(groups, separators=(",", ":")),
        }
    )
    return ETGraph(metadata, builder.nodes)


def generate_rank_classes(
    model: ModelSpec,
    plan: ParallelPlan,
    *,
    granularity: Granularity = "layer",
    device: DeviceSpec | None = None,
) -> dict[int, ETGraph]:
    """One ET per pipeline stage, for its representative rank (``tp = cp = dp = 0``)."""
    layout = RankLayout(plan)
    return {
        stage: generate_rank(
            model, plan, layout.rank_of(pp=stage), granularity=granularity, device=device
        )
        for stage in range(plan.pp)
    }


def write_rank_classes(
    graphs: dict[int, ETGraph], out_dir: str | Path, prefix: str = "workload"
) -> list[Path]:
    """Write rank-class graphs as ``PREFIX.stage<i>.et``; return the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for stage, graph in sorted(graphs.items()):
        path = out / f"{prefix}.stage{stage}.et"
        save(graph, path)
        paths.append(path)
    return paths


def write_per_rank(
    model: ModelSpec,
    plan: ParallelPlan,
    out_dir: str | Path,
    prefix: str = "workload",
    *,
    granularity: Granularity = "layer",
    device: DeviceSpec | None = None,
) -> list[Path]:
    """Write ``PREFIX.<rank>.et`` for every rank and ``comm_groups.json`` (ASTRA-sim layout)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for rank in range(plan.num_gpus):
        path = out / f"{prefix}.{rank}.et"
        graph = generate_rank(model, plan, rank, granularity=granularity, device=device)
        save(graph, path)
        paths.append(path)
    groups = RankLayout(plan).comm_groups()
    (out / "comm_groups.json").write_text(json.dumps(groups, separators=(",", ":")))
    return paths
