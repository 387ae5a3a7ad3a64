"""The nodes of one transformer layer in a rank's ET: layer or op granularity.

``_LayerProgram`` holds what a rank program knows of its stage (model, plan, shapes, costs)
and emits one layer's forward or backward: at layer granularity one compute node between its
TP exchanges; at op granularity one node per operation with the communication after it, and,
with Transformer Engine's TP overlap, each exchange beside the GEMM it overlaps. Under sequence
parallelism the backward's re-gathers and input-gradient reduce-scatters run beside the
gradient GEMMs at either granularity (``comm_sms``/``comm_beside`` give the SMs they take).
The pipeline schedule, gradient synchronisation and optimizer are ``models._generate``'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

from trainsim.chakra_et import CollectiveCommType
from trainsim.models._et_builder import ETBuilder
from trainsim.models._flops import (
    ACT_BYTES,
    NCCL_COMM_SMS,
    TE_COMM_SMS,
    TP_COLUMN_GEMMS,
    TP_ROW_GEMMS,
    LayerCost,
    OpCost,
    layer_cost,
)
from trainsim.models._plan import stage_layer_ranges
from trainsim.models._roofline import (
    COMM_BESIDE_ATTR,
    COMM_SMS_ATTR,
    ROOFLINE_ATTR,
    encode_roofline,
)

__all__: list[str] = []

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


class _LayerProgram:
    """One rank's stage and its layers' nodes (the base of ``models._generate._RankProgram``)."""

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
        # Sequence parallelism keeps only a shard of a column-parallel GEMM's input, so its
        # backward re-gathers it beside the data gradient and reduce-scatters that gradient
        # beside the weight gradient (Megatron-LM's LinearWithGradAccumulationAndAsync-
        # Communication and Transformer Engine alike: NCCL, or TE's bulk userbuffers).
        self.sp_backward = plan.sequence_parallel and plan.tp > 1
        self.dense_cost = layer_cost(model, plan, False)
        self.moe_cost = layer_cost(model, plan, True) if model.is_moe else None
        self._rooflines: dict[tuple[bool, str], tuple[int, ...]] = {}
        self.pending: list[int] = []  # gradient collectives the optimizer waits for
        self.deferred: list[tuple[str, int]] = []  # (block, micro-batch) reduced after backward
        sharded = plan.optimizer_sharded or plan.zero_stage >= 2
        self.grad_type = _RS if sharded else _AR
        self._fsdp_anchor = -1  # what preceded the previous layer (ZeRO-3 prefetch)

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
        # With sequence parallelism the backward also re-gathers the column-parallel GEMMs'
        # inputs for their weight gradients and reduce-scatters their input gradients, beside
        # their data and weight gradients: here beside the layer's node, which the next waits
        # for, and which loses the SMs their kernels hold while they run.
        bulk = 0
        if self.sp_backward and phase == "bwd":
            bulk = sum(op.name in TP_COLUMN_GEMMS for op in cost.ops)
        prev = self._tp_gather(tag, prev, count)
        shard, full_size = self._tp_full() // plan.tp, self._tp_full()
        beside = [
            b.coll(f"{tag}.tp_ag{_suffix(count + i)}", "tp", _AG, shard, [prev], beside_next=True)
            for i in range(bulk)
        ]
        beside += [
            b.coll(f"{tag}.tp_rs{_suffix(i)}", "tp", _RS, full_size, [prev], beside_next=True)
            for i in range(count - bulk, count)
        ]
        if beside and not self.te_overlap:  # TE's margin is kept to op granularity
            extra.update(self._held(beside))
        prev = b.comp(tag, flops, size, prev, {**attrs, **extra})
        if full:
            prev = self._cp_exchange(f"{tag}.recompute", "fwd", prev)
        prev = self._cp_exchange(tag, phase, prev)
        if self.model.layer_is_moe(layer):
            for i in range(2 if full else 1):
                for step in ("ep_dispatch", "ep_combine"):
                    name = f"{tag}.{step}{_suffix(i)}"
                    prev = b.coll(name, "ep", _A2A, self._ep_bytes(), [prev])
        return self._tp_reduce(tag, prev, count - bulk)

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
        # A norm feeding a column-parallel GEMM needs no exchange of its own in the backward
        # under sequence parallelism: the GEMM's backward reduce-scattered its input gradient.
        quiet: set[str] = set()
        if phase == "bwd" and self.sp_backward:
            quiet = {a.name for a, c in pairwise(ops) if c.name in TP_COLUMN_GEMMS}
        if phase == "bwd":
            ops = tuple(reversed(ops))
        for op in ops:
            name = f"{tag}.{op.name}"
            comm = op.name not in quiet
            prev = self._fine_op(name, op, phase, prev, {**attrs, "layer": layer}, last, comm=comm)
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
        fwd = phase == "fwd"
        if comm and not fwd and self.sp_backward and op.name in TP_COLUMN_GEMMS + TP_ROW_GEMMS:
            return self._gemm_backward(name, op, prev, op_attrs)
        if comm and fwd and self.te_overlap and op.fwd_chunks > 1:
            return self._te_forward(name, op, prev, op_attrs)
        flops = op.fwd_flops if fwd else op.bwd_flops
        size = op.fwd_bytes if fwd else op.bwd_bytes
        prev = b.comp(name, flops, size, prev, {**op_attrs, **_op_roofline(op, phase)})
        if not comm:
            return prev
        return self._op_comm(name, op.name, phase, prev, last)

    def _te_forward(self, name: str, op: OpCost, prev: int, attrs: dict[str, object]) -> int:
        """A TP GEMM's forward with Transformer Engine's default overlap (``initialize_ub``).

        A column-parallel GEMM (QKV, FC1) consumes the ring-exchanged all-gather issued after
        the norm; a row-parallel one (projection, FC2) runs in ``fwd_chunks`` chunks, each
        chunk's reduce-scatter after it while the next chunk computes (the pipelined method,
        whose 16-SM kernels leave the chunks the other SMs, ``TE_COMM_SMS``), and the residual
        add waits for the last.
        """
        b = self.b
        full = self._tp_full()
        _, flops, size, shape = op.kernels("fwd")[0]
        if op.name in TP_COLUMN_GEMMS:
            prev = b.comp(name, flops, size, prev, {**attrs, "gemm_shape": shape})
            return self._cp_exchange(name, "fwd", prev) if op.name == "qkv" else prev
        chunk_attrs = {**attrs, "gemm_shape": shape, COMM_SMS_ATTR: TE_COMM_SMS}
        k = op.fwd_chunks
        reduces = []
        for i in range(k):
            rest = i == k - 1
            cf = flops // k + (flops % k if rest else 0)
            cs = size // k + (size % k if rest else 0)
            prev = b.comp(f"{name}.chunk{i}", cf, cs, prev, chunk_attrs)
            part = full // k + (full % k if rest else 0)
            reduces.append(b.coll(f"{name}.tp_rs.chunk{i}", "tp", _RS, part, [prev], overlap=False))
        b.wait_before_next_compute(reduces)
        return prev

    def _gemm_backward(self, name: str, op: OpCost, prev: int, attrs: dict[str, object]) -> int:
        """A TP GEMM's backward under sequence parallelism: data and weight gradient nodes.

        A row-parallel GEMM (projection, FC2) first all-gathers its output gradient: beside
        its data gradient with TE overlap (a ring exchange), before it otherwise (NCCL). A
        column-parallel one (QKV, FC1) runs its data gradient beside the re-gather of its
        input and its weight gradient, which needs that input, beside the reduce-scatter of
        the data gradient; the norm before it waits for that. Those two GEMMs compute on the
        SMs the exchanges leave: TE's bulk kernels hold ``TE_COMM_SMS``, NCCL's
        ``NCCL_COMM_SMS``.
        """
        b = self.b
        full = self._tp_full()
        shard = full // self.plan.tp
        (_, dflops, dbytes, dshape), (_, wflops, wbytes, wshape) = op.gradient_kernels()
        dattrs = {**attrs, "gemm_shape": dshape}
        wattrs = {**attrs, "gemm_shape": wshape}
        if op.name in TP_ROW_GEMMS:
            # With TE overlap the builder puts the gather beside the next compute node.
            prev = b.coll(f"{name}.tp_ag", "tp", _AG, shard, [prev])
            prev = b.comp(f"{name}.dgrad", dflops, dbytes, prev, dattrs)
            return b.comp(f"{name}.wgrad", wflops, wbytes, prev, wattrs)
        gather = b.coll(f"{name}.input.tp_ag", "tp", _AG, shard, [prev], overlap=False)
        prev = b.comp(f"{name}.dgrad", dflops, dbytes, prev, {**dattrs, **self._held([gather])})
        b.wait_before_next_compute([gather])
        reduce = b.coll(f"{name}.tp_rs", "tp", _RS, full, [prev], overlap=False)
        prev = b.comp(f"{name}.wgrad", wflops, wbytes, prev, {**wattrs, **self._held([reduce])})
        b.wait_before_next_compute([reduce])
        if op.name == "qkv":
            prev = self._cp_exchange(name, "bwd", prev)
        return prev

    def _held(self, collectives: list[int]) -> dict[str, object]:
        """Attributes of a GEMM beside ``collectives``: TE's bulk kernels reserve their SMs for
        the whole GEMM (``set_sm_margin``); NCCL collectives hold theirs while they run."""
        if self.te_overlap:
            return {COMM_SMS_ATTR: TE_COMM_SMS}
        return {COMM_SMS_ATTR: NCCL_COMM_SMS, COMM_BESIDE_ATTR: tuple(collectives)}

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
        """ZeRO-3 / FSDP: all-gather the layer's weight shards before it computes.

        With ``overlap_param_gather`` the gather is issued one layer ahead, after what preceded
        the previous layer, and the layer's first kernel waits for it: FSDP's pre-forward and
        pre-backward hooks enqueue it while the GPU still runs that layer (the host runs
        ahead; ``backward_prefetch`` does so explicitly) and DeepSpeed ZeRO-3 prefetches
        likewise. Without, the gather starts once the previous layer is done.
        """
        if self.plan.zero_stage < 3:
            return prev
        shard = self._layer_weight_bytes(layer) // (self.plan.dp * self.plan.cp)
        if not self.plan.overlap_param_gather:
            return self.b.coll(f"{tag}.fsdp_ag", "dp_cp", _AG, shard, [prev])
        anchor, self._fsdp_anchor = self._fsdp_anchor, prev
        gather = self.b.coll(f"{tag}.fsdp_ag", "dp_cp", _AG, shard, [anchor])
        self.b.wait_before_next_compute([gather])
        return prev

    def _layer_weight_bytes(self, layer: int) -> int:
        """16-bit weights of one layer on this GPU."""
        return 2 * sum(self._block_params(f"L{layer}"))

    def _block_params(self, block: str) -> tuple[int, int]:
        """Weights of a block on this GPU: (dense part, expert part)."""
        plan, m, tp = self.plan, self.model, self.plan.tp
        if block in ("embedding", "output"):
            return m.vocab_size * m.hidden_size // tp, 0
        layer = int(block[1:])
        if m.layer_is_moe(layer):
            dense, experts = m.moe_layer_params()
            return dense // tp, experts // (tp * plan.ep)
        return m.dense_layer_params() // tp, 0
