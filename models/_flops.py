"""FLOPs and bytes per operation, forward and backward, per GPU and for the whole step.

Conventions (Megatron-LM / Narayanan et al. 2021): a GEMM of (m x k) @ (k x n) costs 2mnk
FLOPs; the backward of a GEMM costs twice its forward; attention scores and the weighted sum
cost ``2 b s^2 a d`` each with no causal discount (the time model runs fused attention's
backward at 2.5x its forward, as the kernel recomputes the scores; the counts below do not).
*Model FLOPs* count the matmuls of one forward and one backward (3x forward); *hardware FLOPs*
add what activation recomputation runs again (full: every layer's forward; selective: the
attention core). With full recomputation the hardware FLOPs of a dense GPT step equal
Narayanan et al.'s Eq. 3, ``96 B s l h^2 (1 + s/(6h) + V/(16 l h))``: the output layer is
not recomputed. Element-wise work (norms, activations, softmax, dropout, residuals, optimizer)
is bandwidth-bound; it is given bytes for the roofline and counts in neither model nor
hardware FLOPs.

Per-GPU costs divide GEMMs by ``tp`` (weights split) and by ``cp`` (tokens split); with
sequence parallelism element-wise work outside attention and MLP is divided by ``tp`` too.
Routed experts see ``top_k`` times the tokens, spread evenly over the expert-parallel group.
With ``overlap_tp_comm`` the attention and MLP GEMMs run in Transformer Engine's default
chunks beside their TP communication (``OpCost.kernels``). Bytes are a roofline estimate:
each GEMM reads its operands and writes its result once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property, lru_cache

from trainsim.models._plan import ParallelPlan
from trainsim.models._spec import ModelSpec

__all__ = [
    "ACT_BYTES",
    "NCCL_COMM_SMS",
    "TE_COMM_SMS",
    "TP_COLUMN_GEMMS",
    "TP_ROW_GEMMS",
    "LayerCost",
    "OpCost",
    "StepFlops",
    "embedding_cost",
    "layer_cost",
    "logits_cost",
    "optimizer_cost",
    "step_flops",
]

#: Bytes per activation / weight element in mixed precision (bf16/fp16).
ACT_BYTES = 2


@dataclass(frozen=True)
class OpCost:
    """One operation on one GPU for one micro-batch: FLOPs and bytes, forward and backward."""

    name: str
    kind: str  # "gemm", "attention" (fused), "vector"
    fwd_flops: int
    fwd_bytes: int
    gemm_shape: tuple[int, int, int] | None = None
    recompute_selective: bool = False
    bwd_bytes_factor: float = 2.0
    bwd_kernel_flops_factor: float = 2.0
    fwd_chunks: int = 1
    dgrad_chunks: int = 1
    #: Fused attention's (query length, key length, head dim), for measured attention rates.
    attention_shape: tuple[int, int, int] | None = None

    @property
    def bwd_flops(self) -> int:
        """Backward FLOPs as counted: data and weight gradients, twice the forward."""
        return 2 * self.fwd_flops

    @property
    def bwd_bytes(self) -> int:
        """Backward bytes: ``bwd_bytes_factor`` (2: gradients of inputs and weights) x forward."""
        return round(self.bwd_bytes_factor * self.fwd_bytes)

    def kernels(self, phase: str) -> list[tuple[str, int, int, tuple[int, int, int] | None]]:
        """``(kind, flops, bytes, shape)`` of what runs in ``phase`` (``fwd`` or ``bwd``).

        A GEMM overlapped with TP communication runs as chunks along its token dimension
        (``fwd_chunks``; ``dgrad_chunks`` for the backward's data gradient), so the efficiency
        curve sees the chunk's shape; its backward is two kernels, the data gradient and the
        weight gradient (whole), as communication overlaps each apart. The backward runs
        ``bwd_kernel_flops_factor`` x the forward's FLOPs (fused attention: 2.5). Fused
        attention's kernels carry its ``attention_shape`` and are ``attention`` forward,
        ``attention_bwd`` backward.
        """
        if self.kind == "attention":
            if phase == "fwd":
                return [("attention", self.fwd_flops, self.fwd_bytes, self.attention_shape)]
            flops = round(self.bwd_kernel_flops_factor * self.fwd_flops)
            return [("attention_bwd", flops, self.bwd_bytes, self.attention_shape)]
        shape = self.gemm_shape
        if phase == "fwd":
            if shape is not None and self.fwd_chunks > 1:
                shape = (max(1, shape[0] // self.fwd_chunks), shape[1], shape[2])
            return [(self.kind, self.fwd_flops, self.fwd_bytes, shape)]
        if shape is None or (self.dgrad_chunks == 1 and self.fwd_chunks == 1):
            flops = round(self.bwd_kernel_flops_factor * self.fwd_flops)
            return [(self.kind, flops, self.bwd_bytes, shape)]
        return list(self.gradient_kernels())

    def gradient_kernels(
        self,
    ) -> tuple[
        tuple[str, int, int, tuple[int, int, int]], tuple[str, int, int, tuple[int, int, int]]
    ]:
        """A GEMM's backward as two kernels, the data gradient (in ``dgrad_chunks``) and the
        weight gradient: ``(kind, flops, bytes, shape)`` each."""
        if self.gemm_shape is None:
            raise ValueError(f"op {self.name!r} is not a GEMM")
        m, n, k = self.gemm_shape
        half = self.bwd_bytes // 2
        return (
            (self.kind, self.fwd_flops, half, (max(1, m // self.dgrad_chunks), k, n)),
            (self.kind, self.fwd_flops, self.bwd_bytes - half, (k, n, m)),
        )


@dataclass(frozen=True)
class LayerCost:
    """All operations of one transformer layer on one GPU for one micro-batch."""

    ops: tuple[OpCost, ...]

    @cached_property
    def fwd_flops(self) -> int:
        """Forward FLOPs (GEMM + attention core) of the layer."""
        return sum(op.fwd_flops for op in self.ops)

    @cached_property
    def fwd_bytes(self) -> int:
        """Forward bytes of the layer."""
        return sum(op.fwd_bytes for op in self.ops)

    @cached_property
    def bwd_flops(self) -> int:
        """Backward FLOPs of the layer (recomputation not included)."""
        return sum(op.bwd_flops for op in self.ops)

    @cached_property
    def bwd_bytes(self) -> int:
        """Backward bytes of the layer (recomputation not included)."""
        return sum(op.bwd_bytes for op in self.ops)

    @cached_property
    def main_gemm_shape(self) -> tuple[int, int, int] | None:
        """(m, n, k) of the layer's GEMM with the most FLOPs: its efficiency stands for all."""
        gemms = [op for op in self.ops if op.gemm_shape is not None]
        if not gemms:
            return None
        return max(gemms, key=lambda op: op.fwd_flops).gemm_shape

    def recompute_flops(self, recompute: str) -> int:
        """Forward FLOPs run again in the backward pass under ``recompute``."""
        if recompute == "full":
            return self.fwd_flops
        if recompute == "selective":
            return sum(op.fwd_flops for op in self.ops if op.recompute_selective)
        return 0

    def recompute_bytes(self, recompute: str) -> int:
        """Forward bytes moved again in the backward pass under ``recompute``."""
        if recompute == "full":
            return self.fwd_bytes
        if recompute == "selective":
            return sum(op.fwd_bytes for op in self.ops if op.recompute_selective)
        return 0


def _gemm(name: str, m: int, k: int, n: int, in_bytes: int = ACT_BYTES) -> OpCost:
    """An (m x k) by (k x n) GEMM; ``in_bytes`` per operand element (1 in FP8), BF16 out."""
    flops = 2 * m * k * n
    size = in_bytes * (m * k + k * n) + ACT_BYTES * m * n
    return OpCost(name, "gemm", flops, size, (m, n, k))


#: Bytes per element of Transformer Engine's FP8 cast-transpose kernel: it reads a BF16
#: tensor and writes its FP8 copy and the FP8 transpose (or column-wise copy) the other GEMM
#: of the pair needs (2 + 1 + 1). Delayed scaling takes last step's amax and fuses this
#: step's into the cast; current scaling reads the tensor once more for its amax first (+2);
#: blockwise scales are computed in the pass; MXFP8 adds one E8M0 scale per 32 elements for
#: each of the two copies (2 / 32).
FP8_CAST_TRANSPOSE_BYTES = 4
FP8_RECIPE_CAST_BYTES = {"delayed": 4.0, "current": 6.0, "blockwise": 4.0, "mxfp8": 4.0625}

#: GEMMs whose FP8 input comes fused out of the kernel before them in Transformer Engine: the
#: norm of ``LayerNormLinear``/``LayerNormMLP`` writes qkv's and fc1's, the MLP activation
#: fc2's. The attention output (o's input) and routed expert tokens are cast on their own.
_FP8_FUSED_INPUT = frozenset(("q", "k", "v", "qkv", "q_a", "q_b", "kv_a", "kv_b", "fc1", "fc2"))


def _fp8_casts(
    name: str,
    m: int,
    k: int,
    n: int,
    micro_batches: int,
    recipe: str = "delayed",
    weights: int = 1,
) -> OpCost:
    """The FP8 kernels around one GEMM, per micro-batch (forward, backward by its factor).

    Forward: the weight's cast-transpose once per step (the FP8 weight is cached across
    micro-batches, so 1/micro_batches of it here; ``weights`` of them for a grouped GEMM's
    experts), and the input's unless a fused kernel wrote it. Backward: the output gradient's
    cast-transpose (the data- and weight-gradient GEMMs read it as FP8).
    """
    per_element = FP8_RECIPE_CAST_BYTES[recipe]
    fwd = per_element * k * n * weights / max(micro_batches, 1)
    if name not in _FP8_FUSED_INPUT:
        fwd += per_element * m * k
    bwd = per_element * m * n
    fwd_bytes = max(round(fwd), 1)
    return OpCost(f"{name}_fp8_cast", "vector", 0, fwd_bytes, bwd_bytes_factor=bwd / fwd_bytes)


def _tokens(model: ModelSpec, plan: ParallelPlan) -> int:
    """Tokens of one micro-batch on one context-parallel rank."""
    return plan.micro_batch_size * model.seq_len // plan.cp


@lru_cache(maxsize=512)
def layer_cost(model: ModelSpec, plan: ParallelPlan, moe: bool) -> LayerCost:
    """Per-GPU, per-micro-batch cost of a dense (``moe=False``) or MoE transformer layer."""
    tp, t = plan.tp, _tokens(model, plan)
    h = model.hidden_size
    sp_div = tp if plan.sequence_parallel else 1
    ops: list[OpCost] = []
    fp8 = plan.dtype == "fp8"

    def gemm(name: str, m: int, k: int, n: int) -> None:
        # Under an FP8 recipe the layer's GEMMs read FP8 operands and Transformer Engine adds
        # its cast kernels; the router stays in higher precision (Megatron-Core's default).
        if fp8 and name != "router":
            ops.append(_gemm(name, m, k, n, in_bytes=1))
            ops.append(_fp8_casts(name, m, k, n, plan.num_micro_batches, plan.fp8_recipe))
        else:
            ops.append(_gemm(name, m, k, n))

    norm, residual = _block_elementwise(model, t * h // sp_div)
    ops.append(replace(norm, name="attn_norm"))
    for proj in model.attention_projections():
        if proj.name == "o":
            continue
        out = proj.out_features // tp if proj.tp_split else proj.out_features
        gemm(proj.name, t, proj.in_features, out)
        if model.bias and not plan.gemm_bias_fusion:
            ops.append(_bias_op(f"{proj.name}_bias", t * out))
    ops.extend(_attention_ops(model, plan))
    o = next(p for p in model.attention_projections() if p.name == "o")
    gemm("o", t, o.in_features // tp, o.out_features)
    ops.append(replace(residual, name="bias_dropout_add_1"))
    ops.append(replace(norm, name="mlp_norm"))
    if moe:
        gemm("router", t, h, model.num_experts)
        local_experts = model.num_experts // plan.ep
        routed_tokens = t * model.top_k  # per EP rank, perfectly balanced routing
        per_expert = max(1, routed_tokens // local_experts)
        for proj in model.mlp_projections(model.expert_ffn_size):
            k_in = proj.in_features if proj.name == "fc1" else proj.in_features // tp
            n_out = proj.out_features // tp if proj.name == "fc1" else proj.out_features
            # A grouped GEMM: every local expert's weights, all routed tokens.
            flops = 2 * routed_tokens * k_in * n_out
            in_bytes = 1 if fp8 else ACT_BYTES
            size = in_bytes * (routed_tokens * k_in + local_experts * k_in * n_out)
            size += ACT_BYTES * routed_tokens * n_out
            shape = (per_expert, n_out, k_in)
            ops.append(OpCost(f"experts_{proj.name}", "gemm", flops, size, shape))
            if fp8:
                ops.append(
                    _fp8_casts(
                        f"experts_{proj.name}",
                        routed_tokens,
                        k_in,
                        n_out,
                        plan.num_micro_batches,
                        plan.fp8_recipe,
                        weights=local_experts,
                    )
                )
        act = _activation(model, routed_tokens * model.expert_ffn_size // tp)
        ops.append(replace(act, name="experts_act"))
        for i in range(model.num_shared_experts):
            for proj in model.mlp_projections(model.expert_ffn_size):
                k_in = proj.in_features if proj.name == "fc1" else proj.in_features // tp
                n_out = proj.out_features // tp if proj.name == "fc1" else proj.out_features
                gemm(f"shared{i}_{proj.name}", t, k_in, n_out)
    else:
        f = model.ffn_size
        for proj in model.mlp_projections(f):
            k_in = proj.in_features if proj.name == "fc1" else proj.in_features // tp
            n_out = proj.out_features // tp if proj.name == "fc1" else proj.out_features
            gemm(proj.name, t, k_in, n_out)
            if proj.name == "fc1":
                ops.append(_activation(model, t * f // tp))
    ops.append(replace(residual, name="bias_dropout_add_2"))
    if plan.overlap_tp_comm and tp > 1:
        ops = [_overlap_chunks(op, tp) for op in ops]
    return LayerCost(tuple(ops))


def _block_elementwise(model: ModelSpec, elements: int) -> tuple[OpCost, OpCost]:
    """The norm before a block and the fused bias-dropout-add after it, over ``elements``.

    The norm reads its input and writes its output; its backward reads the input and the
    output gradient and writes the input gradient (1.5x). The residual add reads the block's
    output and the residual and writes the sum, plus a 1-byte mask with dropout; its
    backward passes the gradient through the mask (read it and the gradient, write one) or,
    without dropout, only reads the gradient for the bias gradient (nothing without a bias).
    """
    norm = OpCost("norm", "vector", 0, 2 * ACT_BYTES * elements, bwd_bytes_factor=1.5)
    mask = 1 if model.dropout else 0
    fwd = (3 * ACT_BYTES + mask) * elements
    if model.dropout:
        bwd = (2 * ACT_BYTES + mask) * elements
    else:
        bwd = ACT_BYTES * elements if model.bias else 0
    add = OpCost("bias_dropout_add", "vector", 0, fwd, bwd_bytes_factor=bwd / fwd)
    return norm, add


def _bias_op(name: str, elements: int) -> OpCost:
    """A bias added in its own kernel (read and write the GEMM's output) and, backward, its
    gradient summed over the tokens (read the output gradient once)."""
    return OpCost(name, "vector", 0, 2 * ACT_BYTES * elements, bwd_bytes_factor=0.5)


def _activation(model: ModelSpec, elements: int) -> OpCost:
    """The MLP activation over ``elements`` outputs (Megatron's fused bias-GeLU or SwiGLU).

    GeLU reads its input and writes its output; its backward reads the output gradient and
    the input and writes the input gradient, and with a bias sums that gradient over the
    tokens for the bias gradient (read once more). SwiGLU reads its two inputs (gate and up)
    and writes one output; its backward reads the gradient and both inputs and writes both
    input gradients (and reads those again for a bias gradient).
    """
    inputs = 2 if model.gated_mlp else 1
    fwd = (inputs + 1) * ACT_BYTES * elements
    bwd = (1 + 2 * inputs + (inputs if model.bias else 0)) * ACT_BYTES * elements
    return OpCost("mlp_act", "vector", 0, fwd, bwd_bytes_factor=bwd / fwd)


#: Transformer Engine's default TP-overlap methods (``initialize_ub``): the all-gather before
#: a column-parallel GEMM is a ring exchange, one GEMM chunk per TP rank's shard; the
#: reduce-scatter after a row-parallel GEMM is pipelined over 4 chunks; the data gradient of
#: a row-parallel GEMM all-gathers its output gradient by ring exchange. The rest (column
#: dgrad/wgrad) overlaps whole ("bulk").
_RS_PIPELINE_SPLITS = 4

#: SMs the userbuffers kernels of the "pipeline" and "bulk" methods hold (``num_sm``); Transformer
#: Engine runs the GEMMs beside them on the remaining SMs (``set_sm_margin``). The ring
#: exchange moves data with copy engines and one SM, and takes no margin.
TE_COMM_SMS = 16

#: SMs an NCCL collective over NVLink holds while a GEMM runs beside it: Calculon charges such
#: traffic 0.15 of the processor (its ``systems/a100_80g.json`` and ``h100_80g_nvl8.json``),
#: 16 of an A100's 108 SMs.
NCCL_COMM_SMS = 16

#: The GEMMs of a block that tensor parallelism splits by output (column-parallel: their
#: inputs are all-gathered under sequence parallelism) and by input (row-parallel: their
#: outputs reduce-scattered).
TP_COLUMN_GEMMS = ("qkv", "fc1")
TP_ROW_GEMMS = ("o", "fc2")


def _overlap_chunks(op: OpCost, tp: int) -> OpCost:
    """``op`` as it runs with TP communication overlapped (Transformer Engine userbuffers)."""
    if op.name in TP_COLUMN_GEMMS:
        return replace(op, fwd_chunks=tp)
    if op.name in TP_ROW_GEMMS:
        return replace(op, fwd_chunks=_RS_PIPELINE_SPLITS, dgrad_chunks=tp)
    return op


def _attention_ops(model: ModelSpec, plan: ParallelPlan) -> list[OpCost]:
    """The attention core of one layer: one fused kernel, or Megatron-LM's unfused three steps.

    Each context-parallel rank's queries meet the whole sequence's keys. Fused (flash)
    attention reads Q, K, V and writes the output once. Unfused attention is a batched GEMM
    writing the ``s x s`` scores per head, a fused scale-mask-softmax (read and write, 4 bytes
    per score) followed with dropout by a dropout (read, write, 1-byte mask: 5 bytes), and a
    batched GEMM reading the probabilities; its backward moves about 11/9 of the softmax and
    dropout bytes (softmax backward reads the output and the gradient, writes one). Its output
    is then copied into the projection's layout.
    """
    heads = model.num_heads // plan.tp
    b = plan.micro_batch_size
    q_len = model.seq_len // plan.cp
    kv_len = model.seq_len
    d_qk, d_v = model.head_dim_qk, model.head_dim_v
    score = 2 * b * q_len * kv_len * heads * d_qk
    mix = 2 * b * q_len * kv_len * heads * d_v
    q_elems = b * q_len * heads * d_qk
    kv_elems = b * kv_len * heads * (d_qk + d_v)
    out_elems = b * q_len * heads * d_v
    if plan.attention == "flash":
        size = ACT_BYTES * (q_elems + kv_elems + out_elems)
        # FlashAttention's backward runs five matmuls to the forward's two: it recomputes the
        # scores rather than reading them (Dao 2023, FlashAttention-2, backward pass).
        return [
            OpCost(
                "attn_core",
                "attention",
                score + mix,
                size,
                None,
                True,
                bwd_kernel_flops_factor=2.5,
                attention_shape=(q_len, kv_len, d_qk),
            )
        ]
    scores = b * heads * q_len * kv_len
    k_elems = b * kv_len * heads * d_qk
    per_score = 4 + (5 if model.dropout else 0)
    # The weighted sum comes out as [b, heads, s, d]; ``permute(...).contiguous()`` copies it
    # to [s, b, heads * d] for the projection (read and write), and the backward copies its
    # gradient back.
    context = OpCost("attn_context", "vector", 0, 2 * ACT_BYTES * out_elems, None, True, 1.0)
    return [
        OpCost(
            "attn_scores",
            "gemm",
            score,
            ACT_BYTES * (q_elems + k_elems + scores),
            (q_len, kv_len, d_qk),
            True,
        ),
        OpCost("attn_softmax", "vector", 0, per_score * scores, None, True, 11 / 9),
        OpCost(
            "attn_mix",
            "gemm",
            mix,
            ACT_BYTES * (scores + kv_elems - k_elems + out_elems),
            (q_len, d_v, kv_len),
            True,
        ),
        context,
    ]


def embedding_cost(model: ModelSpec, plan: ParallelPlan) -> OpCost:
    """Per-GPU embedding lookup (a gather: bytes only) for one micro-batch.

    Its backward also builds the embeddings' dense weight gradient: PyTorch's embedding
    backward zero-fills a 16-bit [vocab / tp, hidden] gradient and scatters the tokens'
    gradients into it, and Megatron-LM's gradient hook adds it to the fp32 main gradient (read
    2 and 4, write 4): 12 bytes per weight every micro-batch, as for any weight whose gradient
    accumulation is not fused into its GEMM. Learned positions add their [seq, hidden] table.
    """
    t = _tokens(model, plan)
    sp_div = plan.tp if plan.sequence_parallel else 1
    activations = 2 * ACT_BYTES * t * model.hidden_size // sp_div
    table = model.vocab_size // plan.tp * model.hidden_size
    if model.learned_position_embeddings:
        table += model.seq_len * model.hidden_size
    dense_grad = 12 * table
    return OpCost(
        "embedding",
        "vector",
        0,
        activations,
        bwd_bytes_factor=(2 * activations + dense_grad) / activations,
    )


def logits_cost(model: ModelSpec, plan: ParallelPlan) -> tuple[OpCost, OpCost]:
    """Per-GPU output projection and cross-entropy (fp32 logits) for one micro-batch."""
    t = _tokens(model, plan)
    v = model.vocab_size // plan.tp
    proj = _gemm("logits", t, model.hidden_size, v)
    # Megatron's vocabulary-parallel cross-entropy, per logit: cast to fp32 (read 2, write 4),
    # max (4), subtract it (8), exp in place (8), sum (4), divide into the softmax it saves
    # (8): 38 bytes; its backward scales the softmax in place (8) and casts the gradient back
    # to 16 bits (6): 14 bytes.
    loss = OpCost("cross_entropy", "vector", 0, 38 * t * v, bwd_bytes_factor=14 / 38)
    return proj, loss


def optimizer_cost(
    params_local: int, *, params_updated: int | None = None, loss_scaling: bool = False
) -> OpCost:
    """Mixed-precision Adam step as Megatron-LM runs it, in bytes per weight.

    Over the ``params_updated`` weights this GPU updates (its shard with a sharded
    optimizer; all ``params_local`` otherwise): the gradient-norm pass for clipping reads the
    fp32 main gradient (4); fused Adam reads gradient, master weight, m and v and writes the
    last three (28); the updated master weight is cast into the 16-bit model weight (read 4,
    write 2). fp16 adds loss-scale unscaling with its inf/NaN check (read and write the
    gradient: 8). Over all ``params_local`` weights the fp32 main-gradient buffer is zeroed
    for the next step (4).
    """
    updated = params_local if params_updated is None else params_updated
    per_updated = 4 + 28 + 6 + (8 if loss_scaling else 0)
    return OpCost("optimizer", "vector", 0, per_updated * updated + 4 * params_local)


@dataclass(frozen=True)
class StepFlops:
    """Matmul FLOPs of one training step over all GPUs: model and hardware (with recompute)."""

    model_flops: int
    hardware_flops: int
    tokens: int

    def mfu(self, step_time_s: float, num_gpus: int, peak_flops: float) -> float:
        """Model FLOPs utilization: model FLOPs per second over the GPUs' peak."""
        return self.model_flops / (step_time_s * num_gpus * peak_flops)

    def hfu(self, step_time_s: float, num_gpus: int, peak_flops: float) -> float:
        """Hardware FLOPs utilization: like MFU but counting recomputed work."""
        return self.hardware_flops / (step_time_s * num_gpus * peak_flops)


def _forward_flops_per_sequence(model: ModelSpec) -> tuple[int, int, int]:
    """Forward matmul FLOPs of one sequence: (layer GEMMs, attention cores, logits)."""
    s, h = model.seq_len, model.hidden_size
    attn = sum(2 * s * p.params for p in model.attention_projections())
    core = 2 * s * s * model.num_heads * (model.head_dim_qk + model.head_dim_v)
    dense_mlp = sum(2 * s * p.params for p in model.mlp_projections(model.ffn_size))
    gemm = model.num_dense_layers_effective * (attn + dense_mlp)
    if model.is_moe:
        expert = sum(2 * s * p.params for p in model.mlp_projections(model.expert_ffn_size))
        router = 2 * s * h * model.num_experts
        moe = attn + router + (model.top_k + model.num_shared_experts) * expert
        gemm += model.num_moe_layers * moe
    logits = 2 * s * h * model.vocab_size
    return gemm, model.num_layers * core, logits


def step_flops(model: ModelSpec, plan: ParallelPlan) -> StepFlops:
    """Model and hardware FLOPs of one optimizer step of ``plan.batch_size`` sequences."""
    gemm, core, logits = _forward_flops_per_sequence(model)
    batch = plan.batch_size
    model_flops = 3 * batch * (gemm + core + logits)
    if plan.recompute == "full":
        extra = batch * (gemm + core)
    elif plan.recompute == "selective":
        extra = batch * core
    else:
        extra = 0
    return StepFlops(model_flops, model_flops + extra, batch * model.seq_len)
