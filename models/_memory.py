"""Memory per GPU: weights, gradients, optimizer states, activations and buffers, per stage.

* Mixed-precision training with Adam (Megatron-LM defaults): bf16/fp16 weights (2 bytes),
  fp32 main gradients (4), fp32 master weights and two moments (12): 18 bytes per weight.
  ZeRO-1 / the distributed optimizer shard the 12 over the data x context group (expert
  weights over the expert-data group), ZeRO-2 also the gradients, ZeRO-3 also the weights.
* Activations follow Korthikanti et al. 2022 (Sec. 4), generalised term by term so that GQA,
  gated MLPs, MoE and context parallelism fit: per layer and micro-batch, with ``s`` the
  tokens of a context-parallel rank, the norm inputs/outputs and dropout masks (``10 sbh`` for
  GPT) are divided by ``t`` only with sequence parallelism; Q, K, V, the attention output and
  the MLP intermediates (``24 sbh`` for GPT) always by ``t``; the score/softmax/dropout terms
  (``5 a s^2 b``) by ``t``, stored only by unfused attention (``plan.attention``) and without
  selective recomputation. Full recomputation keeps
  each layer's input (``2 sbh``, over ``t`` with SP) plus one layer's full activations while it
  is recomputed. GPT with TP and no SP gives ``sbh (10 + 24/t + 5as/(ht))`` per layer, with SP
  and selective recomputation ``34 sbh / t``, as in the paper.
* In flight: stage ``i`` of ``p`` holds ``p - i`` micro-batches under 1F1B; under the
  interleaved schedule it holds the chunks of its warm-up, ``2(p - i - 1) + (v - 1)p + 1``,
  which for the first stage is the paper's factor ``1 + (p - 1)/(pv)``. Both are capped by the
  micro-batches of the step.
* Stage extras: the embedding's dropout mask on the first stage, the final norm input and fp32
  logits on the last.
* Buffers, a stated allowance: 1 GiB for the CUDA context, cuBLAS workspaces and NCCL; two
  activation-sized send/receive buffers with pipelining; with ZeRO-3 two layers of gathered
  weights (the one in use and the one prefetched). Allocator fragmentation is not modelled.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from trainsim.models._device import DeviceSpec
from trainsim.models._errors import MemoryCapacityError
from trainsim.models._flops import ACT_BYTES
from trainsim.models._plan import ParallelPlan, stage_layer_ranges
from trainsim.models._spec import ModelSpec

__all__ = [
    "TIGHT_MARGIN_FRACTION",
    "MemoryBreakdown",
    "MemoryFit",
    "check_memory",
    "local_params",
    "memory_by_stage",
    "memory_fit",
    "memory_per_gpu",
    "stage_layers",
]

GIB = 2**30
_WEIGHT_BYTES = 2
#: An FP8 weight and its FP8 transpose, one byte each (Transformer Engine, per-tensor scaling).
_FP8_WEIGHT_COPY_BYTES = 2
_GRAD_BYTES = 4
_OPTIMIZER_BYTES = 12


@dataclass(frozen=True)
class MemoryBreakdown:
    """Bytes one GPU of a pipeline stage needs, by component."""

    stage: int
    params: int
    weights_bytes: int
    gradients_bytes: int
    optimizer_bytes: int
    activations_bytes: int
    buffers_bytes: int

    @property
    def states_bytes(self) -> int:
        """Weights, gradients and optimizer states together."""
        return self.weights_bytes + self.gradients_bytes + self.optimizer_bytes

    @property
    def total_bytes(self) -> int:
        """Everything the GPU holds at its peak."""
        return self.states_bytes + self.activations_bytes + self.buffers_bytes

    def to_gib(self) -> dict[str, float]:
        """Every component in GiB, plus the total (for tables and JSON)."""
        out: dict[str, float] = {
            k.replace("_bytes", "_gib"): v / GIB
            for k, v in asdict(self).items()
            if k.endswith("_bytes")
        }
        out["states_gib"] = self.states_bytes / GIB
        out["total_gib"] = self.total_bytes / GIB
        return out


def stage_layers(model: ModelSpec, plan: ParallelPlan, stage: int) -> tuple[int, ...]:
    """0-based indices of the layers pipeline ``stage`` holds (all its virtual chunks)."""
    return tuple(i for chunk in stage_layer_ranges(model, plan)[stage] for i in chunk)


def local_params(model: ModelSpec, plan: ParallelPlan, stage: int) -> tuple[int, int]:
    """Weights a GPU of ``stage`` holds before ZeRO: (dense part, expert part)."""
    tp = plan.tp
    h = model.hidden_size
    norm = 2 * h if model.bias else h
    attn = 0
    for proj in model.attention_projections():
        bias = proj.out_features if model.bias else 0
        attn += (proj.params + bias) // tp if proj.tp_split else proj.params + bias
    attn += norm
    dense_mlp = model.mlp_params(model.ffn_size) // tp + norm
    dense = experts = 0
    for layer in stage_layers(model, plan, stage):
        if model.layer_is_moe(layer):
            expert = model.mlp_params(model.expert_ffn_size) // tp
            dense += attn + norm + h * model.num_experts + model.num_shared_experts * expert
            experts += (model.num_experts // plan.ep) * expert
        else:
            dense += attn + dense_mlp
    if stage == 0:
        dense += model.vocab_size * h // tp
        if model.learned_position_embeddings:
            dense += model.seq_len * h
    if stage == plan.pp - 1:
        dense += norm
        if not model.tied_embeddings or plan.pp > 1:
            dense += model.vocab_size * h // tp
    return dense, experts


def _layer_activation_bytes(model: ModelSpec, plan: ParallelPlan, moe: bool) -> int:
    """Stored activations of one layer for one micro-batch with no recomputation, one GPU."""
    t = plan.tp
    sp_div = t if plan.sequence_parallel else 1
    b, s, h = plan.micro_batch_size, model.seq_len // plan.cp, model.hidden_size
    sbh = s * b * h
    drop = 1 if model.dropout else 0
    # Norm inputs and outputs (2 sbh each, two norms) plus two dropout masks (sbh each).
    replicated = (8 + 2 * drop) * sbh // sp_div
    a = model.num_heads
    qkv = ACT_BYTES * s * b * (a * model.head_dim_qk * 2 + a * model.head_dim_v)
    if not model.is_mla:
        kv = model.kv_heads
        qkv = ACT_BYTES * s * b * (a + kv) * model.head_dim_qk + ACT_BYTES * s * b * kv * (
            model.head_dim_v
        )
    attn_out = ACT_BYTES * s * b * a * model.head_dim_v
    sharded = (qkv + attn_out) // t
    if plan.recompute == "none" and plan.attention == "unfused":
        # Softmax output (2 bytes), and with dropout its mask (1) and output (2). Fused
        # attention keeps only per-row softmax statistics, negligible beside these.
        per_score = ACT_BYTES + drop * (1 + ACT_BYTES)
        sharded += per_score * a * s * model.seq_len * b // t
    if moe:
        f = model.expert_ffn_size
        up = 2 * f if model.gated_mlp else f
        routed = s * b * model.top_k
        sharded += ACT_BYTES * routed * (up + f) // t
        replicated += ACT_BYTES * routed * h + 4 * s * b * model.num_experts
        sharded += model.num_shared_experts * ACT_BYTES * s * b * (up + f) // t
    else:
        f = model.ffn_size
        up = 2 * f if model.gated_mlp else f
        sharded += ACT_BYTES * s * b * (up + f) // t
    return replicated + sharded


def _in_flight_chunks(plan: ParallelPlan, stage: int) -> int:
    """Model-chunk micro-batches whose activations a stage holds at its peak."""
    p, v, m = plan.pp, plan.vpp, plan.num_micro_batches
    if v == 1:
        return min(p - stage, m)
    return min(2 * (p - stage - 1) + (v - 1) * p + 1, m * v)


def _activations(model: ModelSpec, plan: ParallelPlan, stage: int) -> int:
    layers = stage_layers(model, plan, stage)
    chunk_layers = len(layers) // plan.vpp
    sp_div = plan.tp if plan.sequence_parallel else 1
    b, s, h = plan.micro_batch_size, model.seq_len // plan.cp, model.hidden_size
    sbh = s * b * h
    in_flight = _in_flight_chunks(plan, stage)
    moe_flags = [model.layer_is_moe(layer) for layer in layers]
    # Average over the stage's layers so a stage mixing dense and MoE layers is weighted right.
    per_layer = {flag: _layer_activation_bytes(model, plan, flag) for flag in set(moe_flags)}
    mean_layer = sum(per_layer[flag] for flag in moe_flags) / max(1, len(moe_flags))
    if plan.recompute == "full":
        stored = ACT_BYTES * sbh // sp_div * chunk_layers * in_flight
        total = stored + max(per_layer.values())
    else:
        total = int(mean_layer * chunk_layers * in_flight)
    if stage == 0 and model.dropout:
        total += sbh // sp_div * min(plan.pp, plan.num_micro_batches)
    if stage == plan.pp - 1:
        total += ACT_BYTES * sbh // sp_div + 4 * s * b * model.vocab_size // plan.tp
    return int(total)


def _buffers(model: ModelSpec, plan: ParallelPlan, dense_params: int, layers: int) -> int:
    sbh = plan.micro_batch_size * model.seq_len // plan.cp * model.hidden_size
    # The runtime's own share (CUDA context, workspaces, NCCL) is the device's
    # ``runtime_reserved_gib``, taken off the capacity rather than added to every plan.
    total = 0
    if plan.pp > 1:
        total += 2 * ACT_BYTES * sbh
    if plan.zero_stage >= 3 and layers:
        total += 2 * _WEIGHT_BYTES * dense_params // layers
    return total


def _stage_memory(model: ModelSpec, plan: ParallelPlan, stage: int) -> MemoryBreakdown:
    dense, experts = local_params(model, plan, stage)
    dp_cp, edp = plan.dp * plan.cp, plan.expert_dp

    def shard(count: int, group: int, on: bool) -> int:
        return -(-count // group) if on else count

    opt = _OPTIMIZER_BYTES * (
        shard(dense, dp_cp, plan.optimizer_sharded) + shard(experts, edp, plan.optimizer_sharded)
    )
    zero2, zero3 = plan.zero_stage >= 2, plan.zero_stage >= 3
    grads = _GRAD_BYTES * (shard(dense, dp_cp, zero2) + shard(experts, edp, zero2))
    weights = _WEIGHT_BYTES * (shard(dense, dp_cp, zero3) + shard(experts, edp, zero3))
    if plan.dtype == "fp8":
        # Transformer Engine caches each GEMM weight's FP8 copy and its transpose across the
        # step's micro-batches (beside the BF16 weight): the embedding's and output layer's
        # share is counted too, a small overestimate.
        weights += _FP8_WEIGHT_COPY_BYTES * (
            shard(dense, dp_cp, zero3) + shard(experts, edp, zero3)
        )
    layers = len(stage_layers(model, plan, stage))
    return MemoryBreakdown(
        stage=stage,
        params=dense + experts,
        weights_bytes=weights,
        gradients_bytes=grads,
        optimizer_bytes=opt,
        activations_bytes=_activations(model, plan, stage),
        buffers_bytes=_buffers(model, plan, dense, layers),
    )


def memory_by_stage(model: ModelSpec, plan: ParallelPlan) -> tuple[MemoryBreakdown, ...]:
    """Per-GPU memory of every pipeline stage (GPUs within a stage are symmetric)."""
    return tuple(_stage_memory(model, plan, stage) for stage in range(plan.pp))


def memory_per_gpu(model: ModelSpec, plan: ParallelPlan) -> MemoryBreakdown:
    """Per-GPU memory of the stage that needs the most (what must fit on the device)."""
    return max(memory_by_stage(model, plan), key=lambda m: m.total_bytes)


#: A plan whose headroom is under this share of the usable capacity is called tight: the
#: caching allocator's fragmentation and transient buffers this model does not count (NCCL
#: staging, a larger attention workspace) live there. A stated policy, not a measurement.
TIGHT_MARGIN_FRACTION = 0.05


@dataclass(frozen=True)
class MemoryFit:
    """How a per-GPU need compares with a device: usable capacity, headroom and a verdict."""

    need_gib: float
    capacity_gib: float
    usable_gib: float
    margin_gib: float

    @property
    def headroom_gib(self) -> float:
        """Usable capacity left after the need (negative when it does not fit)."""
        return self.usable_gib - self.need_gib

    @property
    def verdict(self) -> str:
        """``fits``, ``tight`` (headroom under the margin) or ``does not fit``."""
        if self.headroom_gib < 0:
            return "does not fit"
        return "tight" if self.headroom_gib < self.margin_gib else "fits"

    @property
    def fits(self) -> bool:
        """Whether the need is within the usable capacity (tight counts as fitting)."""
        return self.headroom_gib >= 0

    def describe(self) -> str:
        """One line: need, usable of nominal capacity, headroom and the verdict."""
        return (
            f"{self.need_gib:.2f} GiB of {self.usable_gib:.2f} GiB usable "
            f"({self.capacity_gib:.0f} GiB less {self.capacity_gib - self.usable_gib:.1f} the "
            f"runtime holds): headroom {self.headroom_gib:.2f} GiB, {self.verdict}"
            + (f" (under the {self.margin_gib:.2f} GiB margin)" if self.verdict == "tight" else "")
        )

    def to_dict(self) -> dict[str, float | str | bool]:
        """Plain data for JSON output."""
        return {
            "need_gib": self.need_gib,
            "capacity_gib": self.capacity_gib,
            "usable_gib": self.usable_gib,
            "headroom_gib": self.headroom_gib,
            "margin_gib": self.margin_gib,
            "verdict": self.verdict,
            "fits": self.fits,
        }


def memory_fit(need_bytes: int | float, device: DeviceSpec) -> MemoryFit:
    """Compare a per-GPU need in bytes with ``device``'s usable memory."""
    usable = device.usable_memory_gib
    return MemoryFit(
        need_gib=need_bytes / 2**30,
        capacity_gib=device.memory_gib,
        usable_gib=usable,
        margin_gib=TIGHT_MARGIN_FRACTION * usable,
    )


def check_memory(model: ModelSpec, plan: ParallelPlan, device: DeviceSpec) -> MemoryBreakdown:
    """Return the peak stage's memory, or raise if it exceeds ``device``'s usable memory."""
    peak = memory_per_gpu(model, plan)
    fit = memory_fit(peak.total_bytes, device)
    if not fit.fits:
        gib = peak.to_gib()
        raise MemoryCapacityError(
            f"memory per GPU {gib['total_gib']:.1f} GiB (stage {peak.stage}: states "
            f"{gib['states_gib']:.1f}, activations {gib['activations_gib']:.1f}, buffers "
            f"{gib['buffers_gib']:.1f}) exceeds the {fit.usable_gib:.1f} GiB usable of "
            f"{device.name} ({device.memory_gib:.1f} GiB less {device.runtime_reserved_gib:.1f} "
            f"the runtime holds)"
        )
    return peak
