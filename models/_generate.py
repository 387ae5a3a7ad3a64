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
two nodes; see ``_RankProgram._te_gemm``); at layer granularity beside the layer, which hides
the chunks' pipeline fill and drain, so rows with TP overlap are best predicted at op
granularity. Data-parallel
gradient collectives hang off the backward node of their layer in the last micro-batch (with
``overlap_grad_reduce``; otherwise after the whole backward) and the optimizer waits for all of
them; ZeRO-3 gathers each layer's weights before its forward and backward and reduce-scatters
its gradients after every micro-batch. A receive follows the previous compute node; with
``blocking_p2p`` (Megatron's 1F1B exchanges) the next compute node waits for the stage's sends
too, and the optimizer for the last ones. With pipeline stages and tied embeddings, the first
and last stage exchange their embedding gradients (``embedding.grad.send``/``recv``, the
two-rank all-reduce Megatron-LM runs after the data-parallel reduction; tag ``2 m v + 1``)
before their optimizer.

Approximations: context parallelism is an all-gather of keys and values per layer forward and
a reduce-scatter of their gradients backward (Megatron overlaps a ring of send/receives);
expert parallelism is one all-to-all to dispatch and one to combine; the vocabulary-parallel
loss reductions (a few bytes per token) are left out; gradients are reduced in fp32 (4 bytes
per weight).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from chakra_et import (
    CollectiveCommType,
    ETGraph,
    new_metadata,
    save,
)
from models._device import DeviceSpec
from models._errors import ModelsError
from models._et_builder import COMP, ETBuilder
from models._flops import (
    ACT_BYTES,
    LayerCost,
    OpCost,
    embedding_cost,
    layer_cost,
    logits_cost,
    optimizer_cost,
)
from models._memory import local_params
from models._pipeline import pipeline_schedule
from models._plan import ParallelPlan, check_plan, stage_layer_ranges
from models._ranks import RankLayout
from models._roofline import ROOFLINE_ATTR, encode_roofline
from models._spec import ModelSpec

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
_AR = int(CollectiveCommType.ALL_REDUCE)
_AG = int(CollectiveCommType.ALL_GATHER)
_RS = int(CollectiveCommType.REDUCE_SCATTER)
_A2A = int(CollectiveCommType.ALL_TO_ALL)


def _suffix(i: int) -> str:
    """Name suffix of the i-th of several like collectives: none for the first, then .1, .2..."""
    return f".{i}" if i else ""


def _op_roofline(op: OpCost, phase: str) -> dict[str, object]:
    """``roofline_ops`` for a single-op node the plain roofline cannot cost: fused attention,
    or a GEMM run in chunks beside overlapped TP communication."""
    if op.kind != "attention" and op.fwd_chunks == 1 and op.dgrad_chunks == 1:
        return {}
    return {ROOFLINE_ATTR: encode_roofline(op.kernels(phase))}


class _RankProgram:
    """Emits one rank's training step: the pipeline schedule, then gradient sync and optimizer."""

    def __init__(self, b: ETBuilder) -> None:
        self.b = b
        model, plan = b.model, b.plan
        self.model, self.plan = model, plan
        self.stage = b.coord.pp
        self.chunks: tuple[range, ...] = stage_layer_ranges(model, plan)[self.stage]
        self.tokens = plan.micro_batch_size * model.seq_len // plan.cp
        self.act_bytes = ACT_BYTES * self.tokens * model.hidden_size
        # Stages exchange 1/tp of each activation: sequence parallelism holds only a shard,
        # and Megatron's scatter/gather sends one and all-gathers it on arrival.
        self.gather_received = (
            plan.pipeline_scatter_gather and not plan.sequence_parallel and plan.tp > 1
        )
        if plan.sequence_parallel or self.gather_received:
            self.act_bytes //= plan.tp
        # Transformer Engine's userbuffers overlap (Megatron allows it only with sequence
        # parallelism): each TP exchange runs beside the GEMM it feeds or drains.
        self.te_overlap = plan.overlap_tp_comm and plan.tp > 1 and plan.sequence_parallel
        self.dense_cost = layer_cost(model, plan, False)
        self.moe_cost = layer_cost(model, plan, True) if model.is_moe else None
        self._rooflines: dict[tuple[bool, str], tuple[int, ...]] = {}
        self.pending: list[int] = []  # gradient collectives the optimizer waits for
        self.deferred: list[tuple[str, int]] = []  # (block, micro-batch) reduced after backward
        sharded = plan.optimizer_sharded or plan.zero_stage >= 2
        self.grad_type = _RS if sharded else _AR

    # -- sizes of the collectives of one layer --------------------------------------------
    def _tp_full(self) -> int:
        return ACT_BYTES * self.tokens * self.model.hidden_size

    def _cp_kv_shard(self) -> int:
        m = self.model
        heads = (m.num_heads if m.is_mla else m.kv_heads) // self.plan.tp
        return ACT_BYTES * self.tokens * heads * (m.head_dim_qk + m.head_dim_v)

    def _ep_bytes(self) -> int:
        return ACT_BYTES * self.tokens * self.model.top_k * self.model.hidden_size

    def _cost(self, layer: int) -> LayerCost:
        if self.model.layer_is_moe(layer):
            assert self.moe_cost is not None
            return self.moe_cost
        return self.dense_cost

    def _tp_reduce(self, tag: str, prev: int, count: int) -> int:
        """TP reductions of ``count`` block outputs: all-reduces, or reduce-scatters with SP.

        Each block's reduction is its own collective (its own start-up latency), one after
        the other.
        """
        b, plan = self.b, self.plan
        kind, op = ("tp_rs", _RS) if plan.sequence_parallel else ("tp_ar", _AR)
        for i in range(count):
            prev = b.coll(f"{tag}.{kind}{_suffix(i)}", "tp", op, self._tp_full(), [prev])
        return prev

    def _tp_gather(self, tag: str, prev: int, count: int) -> int:
        """TP all-gathers of ``count`` sequence-parallel block inputs (only with SP)."""
        if not self.plan.sequence_parallel:
            return prev
        shard = self._tp_full() // self.plan.tp
        for i in range(count):
            prev = self.b.coll(f"{tag}.tp_ag{_suffix(i)}", "tp", _AG, shard, [prev])
        return prev

    def _cp_exchange(self, tag: str, phase: str, prev: int) -> int:
        if self.plan.cp == 1:
            return prev
        if phase == "fwd":
            return self.b.coll(f"{tag}.cp_ag", "cp", _AG, self._cp_kv_shard(), [prev])
        full = self._cp_kv_shard() * self.plan.cp
        return self.b.coll(f"{tag}.cp_rs", "cp", _RS, full, [prev])

    def _grad_accum_bytes(self, layer: int) -> int:
        """Bytes of adding one micro-batch's weight gradients to the fp32 main gradients.

        Without gradient-accumulation fusion the bf16/fp16 gradient is written, read again and
        added to the fp32 main gradient (read and written): 2 + 2 + 4 + 4 bytes per weight.
        """
        if self.plan.grad_accumulation_fusion:
            return 0
        dense_local, expert_local = self._block_params(f"L{layer}")
        return 12 * (dense_local + expert_local)

    def _roofline(self, layer: int, phase: str) -> tuple[int, ...]:
        """``roofline_ops`` of a whole layer node: each op, and what the backward recomputes."""
        moe = self.model.layer_is_moe(layer)
        key = (moe, phase)
        cached = self._rooflines.get(key)
        if cached is None:
            ops = self._cost(layer).ops
            recompute = self.plan.recompute
            if phase == "fwd":
                items = [item for op in ops for item in op.kernels("fwd")]
            else:
                items = [
                    item
                    for op in ops
                    if recompute == "full" or (recompute == "selective" and op.recompute_selective)
                    for item in op.kernels("fwd")
                ]
                items += [item for op in ops for item in op.kernels("bwd")]
                accum = self._grad_accum_bytes(layer)
                if accum:
                    items.append(("vector", 0, accum, None))
            cached = self._rooflines[key] = encode_roofline(items)
        return cached

    # -- one layer -------------------------------------------------------------------------
    def _layer_coarse(self, layer: int, phase: str, prev: int, attrs: dict[str, object]) -> int:
        b, plan, cost = self.b, self.plan, self._cost(layer)
        tag = f"L{layer}.{phase}.mb{attrs['micro_batch']}"
        prev = self._fsdp_gather(layer, tag, prev)
        extra: dict[str, object] = {"layer": layer, ROOFLINE_ATTR: self._roofline(layer, phase)}
        if cost.main_gemm_shape is not None:
            extra["gemm_shape"] = cost.main_gemm_shape
        if phase == "fwd":
            flops, size = cost.fwd_flops, cost.fwd_bytes
        else:
            rflops = cost.recompute_flops(plan.recompute)
            flops = cost.bwd_flops + rflops
            size = cost.bwd_bytes + cost.recompute_bytes(plan.recompute)
            size += self._grad_accum_bytes(layer)
            extra["recompute_ops"] = rflops
        # Full recomputation repeats the forward's communication in the backward: its two TP
        # exchanges, its context-parallel gather and its expert dispatch and combine.
        full = phase == "bwd" and plan.recompute == "full"
        count = 4 if full else 2
        # With TE overlap the backward also re-gathers the column-parallel GEMMs' inputs for
        # their weight gradients (sequence parallelism keeps only a shard of them).
        regather = 2 if self.te_overlap and phase == "bwd" else 0
        prev = self._tp_gather(tag, prev, count + regather)
        prev = b.comp(tag, flops, size, prev, {**attrs, **extra})
        if full:
            prev = self._cp_exchange(f"{tag}.recompute", "fwd", prev)
        prev = self._cp_exchange(tag, phase, prev)
        if self.model.layer_is_moe(layer):
            for i in range(2 if full else 1):
                for step in ("ep_dispatch", "ep_combine"):
                    name = f"{tag}.{step}{_suffix(i)}"
                    prev = b.coll(name, "ep", _A2A, self._ep_bytes(), [prev])
        return self._tp_reduce(tag, prev, count)

    def _layer_fine(self, layer: int, phase: str, prev: int, attrs: dict[str, object]) -> int:
        b, plan, cost = self.b, self.plan, self._cost(layer)
        tag = f"L{layer}.{phase}.mb{attrs['micro_batch']}"
        prev = self._fsdp_gather(layer, tag, prev)
        ops: Sequence[OpCost] = cost.ops
        # The TP reduction follows the attention output projection and the MLP's last GEMM,
        # before the residual add.
        last = ops[-2].name if ops[-1].name.startswith("bias_dropout_add") else ops[-1].name
        if phase == "bwd" and plan.recompute != "none":
            for op in ops:
                if plan.recompute == "full" or op.recompute_selective:
                    rattrs = {**attrs, "phase": "recompute", "layer": layer}
                    name = f"{tag}.{op.name}.recompute"
                    # Recomputing the whole forward repeats its communication too.
                    comm = plan.recompute == "full"
                    prev = self._fine_op(name, op, "fwd", prev, rattrs, last, comm=comm)
        if phase == "bwd":
            ops = tuple(reversed(ops))
        for op in ops:
            name = f"{tag}.{op.name}"
            prev = self._fine_op(name, op, phase, prev, {**attrs, "layer": layer}, last)
        accum = self._grad_accum_bytes(layer) if phase == "bwd" else 0
        if accum:
            gattrs = {**attrs, "layer": layer, "op": "grad_accum"}
            prev = b.comp(f"{tag}.grad_accum", 0, accum, prev, gattrs)
        return prev

    def _fine_op(
        self,
        name: str,
        op: OpCost,
        phase: str,
        prev: int,
        attrs: dict[str, object],
        last: str,
        *,
        comm: bool = True,
    ) -> int:
        """One op of a layer at op granularity, and (with ``comm``) the communication after it."""
        b = self.b
        op_attrs: dict[str, object] = {**attrs, "op": op.name}
        if op.gemm_shape is not None:
            op_attrs["gemm_shape"] = op.gemm_shape
        if self.te_overlap and op.fwd_chunks > 1 and comm:
            return self._te_gemm(
                name, op, phase, prev, op_attrs, row_parallel=op.name != "qkv" and op.name != "fc1"
            )
        fwd = phase == "fwd"
        flops = op.fwd_flops if fwd else op.bwd_flops
        size = op.fwd_bytes if fwd else op.bwd_bytes
        prev = b.comp(name, flops, size, prev, {**op_attrs, **_op_roofline(op, phase)})
        if not comm:
            return prev
        if self.te_overlap and not fwd and op.name in ("attn_norm", "mlp_norm"):
            return prev  # its input gradient was reduce-scattered beside the GEMM's wgrad
        return self._op_comm(name, op.name, phase, prev, last)

    def _te_gemm(
        self,
        name: str,
        op: OpCost,
        phase: str,
        prev: int,
        attrs: dict[str, object],
        *,
        row_parallel: bool,
    ) -> int:
        """A TP GEMM with Transformer Engine's default overlap (``initialize_ub``).

        Forward: a column-parallel GEMM (QKV, FC1) consumes the ring-exchanged all-gather
        issued after the norm; a row-parallel one (projection, FC2) runs in ``fwd_chunks``
        chunks, each chunk's reduce-scatter after it while the next chunk computes (the
        pipelined method), and the residual add waits for the last. Backward: a row-parallel
        GEMM's data gradient runs beside the all-gather of its output gradient, its weight
        gradient after it; a column-parallel GEMM's data gradient runs beside the re-gather of
        its input (the "bulk" method) and its weight gradient beside the reduce-scatter of
        that data gradient, which the norm before it waits for.
        """
        b = self.b
        full = self._tp_full()
        shard = full // self.plan.tp
        if phase == "fwd":
            _, flops, size, shape = op.kernels("fwd")[0]
            chunk_attrs = {**attrs, "gemm_shape": shape}
            if not row_parallel:
                prev = b.comp(name, flops, size, prev, chunk_attrs)
                return self._op_comm(name, op.name, phase, prev, "")
            k = op.fwd_chunks
            reduces = []
            for i in range(k):
                rest = i == k - 1
                cf = flops // k + (flops % k if rest else 0)
                cs = size // k + (size % k if rest else 0)
                prev = b.comp(f"{name}.chunk{i}", cf, cs, prev, chunk_attrs)
                part = full // k + (full % k if rest else 0)
                reduces.append(
                    b.coll(f"{name}.tp_rs.chunk{i}", "tp", _RS, part, [prev], overlap=False)
                )
            b.wait_before_next_compute(reduces)
            return prev
        (_, dflops, dbytes, dshape), (_, wflops, wbytes, wshape) = op.kernels("bwd")
        gather = f"{name}.tp_ag" if row_parallel else f"{name}.input.tp_ag"
        prev = b.coll(gather, "tp", _AG, shard, [prev])
        prev = b.comp(f"{name}.dgrad", dflops, dbytes, prev, {**attrs, "gemm_shape": dshape})
        if not row_parallel:
            prev = b.coll(f"{name}.tp_rs", "tp", _RS, full, [prev])
        prev = b.comp(f"{name}.wgrad", wflops, wbytes, prev, {**attrs, "gemm_shape": wshape})
        if op.name in ("qkv", "kv_b"):
            prev = self._cp_exchange(name, phase, prev)
        return prev

    def _op_comm(self, name: str, op: str, phase: str, prev: int, last: str) -> int:
        """The communication that follows op ``op`` of a layer (TP, CP or EP), if any."""
        b = self.b
        if op in ("attn_norm", "mlp_norm"):
            prev = self._tp_gather(name, prev, 1)
        elif op in ("qkv", "kv_b"):
            prev = self._cp_exchange(name, phase, prev)
        elif op == "router":
            prev = b.coll(f"{name}.ep_dispatch", "ep", _A2A, self._ep_bytes(), [prev])
        elif op == "experts_fc2":
            prev = b.coll(f"{name}.ep_combine", "ep", _A2A, self._ep_bytes(), [prev])
        if op in ("o", last):
            prev = self._tp_reduce(name, prev, 1)
        return prev

    def _fsdp_gather(self, layer: int, tag: str, prev: int) -> int:
        if self.plan.zero_stage < 3:
            return prev
        shard = self._layer_weight_bytes(layer) // (self.plan.dp * self.plan.cp)
        return self.b.coll(f"{tag}.fsdp_ag", "dp_cp", _AG, shard, [prev])

    def _layer_weight_bytes(self, layer: int) -> int:
        m, tp = self.model, self.plan.tp
        if m.layer_is_moe(layer):
            dense, experts = m.moe_layer_params()
            return 2 * (dense // tp + experts // (tp * self.plan.ep))
        return 2 * m.dense_layer_params() // tp

    # -- the step ------------------------------------------------------------------------------
    def run(self) -> None:
        b, plan = self.b, self.plan
        p, v, m = plan.pp, plan.vpp, plan.num_micro_batches
        c = b.coord
        prev_stage = b.layout.rank_of(tp=c.tp, cp=c.cp, dp=c.dp, pp=(self.stage - 1) % p)
        next_stage = b.layout.rank_of(tp=c.tp, cp=c.cp, dp=c.dp, pp=(self.stage + 1) % p)
        last_chunk = p * v - 1
        layer_fn = self._layer_coarse if b.gran == "layer" else self._layer_fine
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
                prev = recv  # the receive itself follows ``prev``
                if self.gather_received:
                    name = f"recv.{phase}.mb{mb}.c{chunk}.tp_ag"
                    prev = b.coll(name, "tp", _AG, self.act_bytes, [prev])
            if fwd:
                if gchunk == 0:
                    size = embedding_cost(self.model, plan).fwd_bytes
                    prev = b.comp(f"embedding.fwd.mb{mb}", 0, size, prev, {**attrs, "layer": -1})
                for layer in self.chunks[chunk]:
                    prev = layer_fn(layer, "fwd", prev, attrs)
                if gchunk == last_chunk:
                    prev = self._logits("fwd", mb, prev, attrs)
                else:
                    tag = 1 + mb * v + (gchunk + 1) // p
                    send = b.p2p(
                        f"send.fwd.mb{mb}.c{chunk}", True, next_stage, self.act_bytes, tag, prev
                    )
                    if plan.blocking_p2p:
                        b.wait_before_next_compute([send])
            else:
                if gchunk == last_chunk:
                    prev = self._logits("bwd", mb, prev, attrs)
                    has_output = not self.model.tied_embeddings or p * v > 1
                    if has_output and (mb == m - 1 or plan.zero_stage >= 3):
                        self._grad_sync("output", prev, mb)
                for layer in reversed(self.chunks[chunk]):
                    prev = layer_fn(layer, "bwd", prev, attrs)
                    if mb == m - 1 or plan.zero_stage >= 3:
                        self._grad_sync(f"L{layer}", prev, mb)
                if gchunk == 0:
                    size = embedding_cost(self.model, plan).bwd_bytes
                    prev = b.comp(f"embedding.bwd.mb{mb}", 0, size, prev, {**attrs, "layer": -1})
                    if mb == m - 1 or plan.zero_stage >= 3:
                        self._grad_sync("embedding", prev, mb)
                else:
                    tag = 1 + (m + mb) * v + (gchunk - 1) // p
                    send = b.p2p(
                        f"send.bwd.mb{mb}.c{chunk}", True, prev_stage, self.act_bytes, tag, prev
                    )
                    if plan.blocking_p2p:
                        b.wait_before_next_compute([send])
        self._optimizer(prev)

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

    def _block_params(self, block: str) -> tuple[int, int]:
        """Weights of a block on this GPU: (dense part, expert part)."""
        plan, m, tp = self.plan, self.model, self.plan.tp
        if block == "embedding":
            return m.vocab_size * m.hidden_size // tp, 0
        if block == "output":
            return m.vocab_size * m.hidden_size // tp, 0
        layer = int(block[1:])
        if m.layer_is_moe(layer):
            dense, experts = m.moe_layer_params()
            return dense // tp, experts // (tp * plan.ep)
        return m.dense_layer_params() // tp, 0

    def _emit_grad_sync(self, block: str, after: int, mb: int) -> None:
        dense_local, expert_local = self._block_params(block)
        for kind, count in (("dp_cp", dense_local), ("edp", expert_local)):
            name = f"{block}.grad.{kind}.mb{mb}"
            nid = self.b.coll(name, kind, self.grad_type, _GRAD_BYTES * count, [after])
            if nid != after:
                self.pending.append(nid)

    def _embedding_exchange(self, tail: int) -> list[int]:
        """The tied word embedding's gradient all-reduce between the first and last stage.

        Megatron-LM keeps the input embedding (first stage) and the output layer (last stage)
        equal by all-reducing their fp32 gradients once the data-parallel reduction is done.
        Between two ranks that is an exchange: each sends its whole gradient to the other,
        what NCCL's two-rank ring moves per direction too.
        """
        b, plan, model = self.b, self.plan, self.model
        last = plan.pp - 1
        if not model.tied_embeddings or plan.pp == 1 or self.stage not in (0, last):
            return []
        c = b.coord
        peer = b.layout.rank_of(tp=c.tp, cp=c.cp, dp=c.dp, pp=last - self.stage)
        size = _GRAD_BYTES * model.vocab_size * model.hidden_size // plan.tp
        tag = 2 * plan.num_micro_batches * plan.vpp + 1  # after every pipeline tag
        send = b.p2p("embedding.grad.send", True, peer, size, tag, tail, self.pending)
        recv = b.p2p("embedding.grad.recv", False, peer, size, tag, tail)
        return [send, recv]

    def _optimizer(self, tail: int) -> None:
        b, plan = self.b, self.plan
        for block, mb in self.deferred:
            self._emit_grad_sync(block, tail, mb)
        exchange = self._embedding_exchange(tail)
        dense, experts = local_params(self.model, plan, self.stage)
        updated = dense + experts
        if plan.optimizer_sharded:
            updated = -(-dense // (plan.dp * plan.cp)) + -(-experts // plan.expert_dp)
        # ZeRO-2/3 shard the gradients too; Megatron's distributed optimizer keeps them whole.
        held = updated if plan.zero_stage >= 2 else dense + experts
        size = optimizer_cost(
            held, params_updated=updated, loss_scaling=plan.dtype == "fp16"
        ).fwd_bytes
        attrs: dict[str, object] = {
            "num_ops": 0,
            "tensor_size": size,
            "stream": "compute",
            "phase": "optimizer",
            "layer": -1,
        }
        deps = (tail, *self.pending, *exchange, *b.drain_tp(), *b.drain_waits())
        nid = b._add("optimizer", COMP, attrs, deps)
        if plan.optimizer_sharded and plan.zero_stage < 3:
            for kind, count, group in (
                ("dp_cp", dense, plan.dp * plan.cp),
                ("edp", experts, plan.expert_dp),
            ):
                b.coll(f"param_gather.{kind}", kind, _AG, 2 * (-(-count // group)), [nid])


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
