"""ModelSpec: the shape of a dense or mixture-of-experts decoder-only transformer.

Everything downstream (FLOPs, memory, ET generation) reads the model only through this class,
so every architectural variant is one field here: grouped-query attention (``num_kv_heads``),
gated MLPs (SwiGLU, ``gated_mlp``), untied output layers, MoE layers with routed and shared
experts after some leading dense layers (DeepSeek-V3, Mixtral), and multi-head latent attention
(MLA) described by its low-rank projection sizes.

Approximations, stated once: MLA is modelled by its projection GEMMs and its attention-core
sizes (query/key head size ``qk_nope + qk_rope``, value head size ``v_head_dim``); the decoupled
RoPE key shared across heads is counted as part of the ``kv_a`` projection. DeepSeek-V3's
multi-token-prediction module and auxiliary-loss-free load balancing are not modelled; routing
is assumed perfectly balanced.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, model_validator

from trainsim.models._errors import InvalidModelError

__all__ = ["ModelSpec", "Projection"]


@dataclass(frozen=True)
class Projection:
    """One weight matrix of a layer (in x out features) and whether TP splits it."""

    name: str
    in_features: int
    out_features: int
    tp_split: bool = True

    @property
    def params(self) -> int:
        """Number of weights in the matrix (biases are counted separately)."""
        return self.in_features * self.out_features


class ModelSpec(BaseModel):
    """Architecture of a dense or MoE decoder-only transformer and its training sequence length."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field("custom", description="preset or user name, lower case with dashes")
    num_layers: int = Field(ge=1, description="transformer layers")
    hidden_size: int = Field(ge=1, description="model width h")
    num_heads: int = Field(ge=1, description="attention (query) heads")
    num_kv_heads: int | None = Field(None, ge=1, description="key/value heads (GQA); None = MHA")
    head_dim: int | None = Field(None, ge=1, description="per-head size; None = hidden/heads")
    ffn_hidden_size: int | None = Field(None, ge=1, description="dense MLP width; None = 4h")
    gated_mlp: bool = Field(False, description="SwiGLU-style MLP with gate and up projections")
    vocab_size: int = Field(ge=1)
    seq_len: int = Field(ge=1, description="training sequence length in tokens")
    tied_embeddings: bool = Field(True, description="output layer shares the input embedding")
    learned_position_embeddings: bool = Field(False, description="GPT-style absolute positions")
    dropout: bool = Field(False, description="dropout layers present (adds activation masks)")
    bias: bool = Field(False, description="linear layers carry biases")
    num_experts: int = Field(0, ge=0, description="routed experts per MoE layer; 0 = dense")
    top_k: int = Field(0, ge=0, description="routed experts per token")
    num_shared_experts: int = Field(0, ge=0, description="always-active experts per MoE layer")
    expert_ffn_hidden_size: int | None = Field(None, ge=1, description="expert MLP width")
    num_dense_layers: int = Field(0, ge=0, description="leading dense layers of an MoE model")
    q_lora_rank: int | None = Field(None, ge=1, description="MLA query low-rank size")
    kv_lora_rank: int | None = Field(
        None, ge=1, description="MLA key/value low-rank size; sets MLA"
    )
    qk_rope_head_dim: int = Field(0, ge=0, description="MLA decoupled RoPE head size")
    v_head_dim: int | None = Field(None, ge=1, description="MLA value head size")

    @model_validator(mode="after")
    def _check(self) -> ModelSpec:
        if self.head_dim is None and self.hidden_size % self.num_heads:
            raise InvalidModelError(
                f"hidden_size={self.hidden_size} must be divisible by num_heads={self.num_heads} "
                "(or give head_dim)"
            )
        if self.num_heads % self.kv_heads:
            raise InvalidModelError(
                f"num_heads={self.num_heads} must be divisible by num_kv_heads={self.kv_heads}"
            )
        if self.num_experts:
            if not 1 <= self.top_k <= self.num_experts:
                raise InvalidModelError(
                    f"top_k={self.top_k} must be in [1, num_experts={self.num_experts}]"
                )
            if self.num_dense_layers >= self.num_layers:
                raise InvalidModelError(
                    f"num_dense_layers={self.num_dense_layers} must be < "
                    f"num_layers={self.num_layers} in an MoE model"
                )
        elif self.top_k or self.num_shared_experts:
            raise InvalidModelError(
                f"top_k={self.top_k} and num_shared_experts={self.num_shared_experts} need "
                "num_experts >= 1"
            )
        return self

    # -- derived sizes ----------------------------------------------------------------------
    @property
    def kv_heads(self) -> int:
        """Key/value heads (equal to ``num_heads`` without GQA)."""
        return self.num_kv_heads or self.num_heads

    @property
    def is_mla(self) -> bool:
        """Whether attention is multi-head latent attention (DeepSeek-V2/V3)."""
        return self.kv_lora_rank is not None

    @property
    def head_dim_qk(self) -> int:
        """Per-head size of queries and keys (MLA adds the RoPE part)."""
        base = self.head_dim or self.hidden_size // self.num_heads
        return base + self.qk_rope_head_dim if self.is_mla else base

    @property
    def head_dim_v(self) -> int:
        """Per-head size of values."""
        return self.v_head_dim or self.head_dim or self.hidden_size // self.num_heads

    @property
    def ffn_size(self) -> int:
        """Width of a dense MLP."""
        return self.ffn_hidden_size or 4 * self.hidden_size

    @property
    def expert_ffn_size(self) -> int:
        """Width of one expert's MLP."""
        return self.expert_ffn_hidden_size or self.ffn_size

    @property
    def is_moe(self) -> bool:
        """Whether some layers are mixture-of-experts layers."""
        return self.num_experts > 0

    @property
    def num_moe_layers(self) -> int:
        """Number of MoE layers (every layer after the leading dense ones)."""
        return self.num_layers - self.num_dense_layers if self.is_moe else 0

    def layer_is_moe(self, layer: int) -> bool:
        """Whether the 0-based ``layer`` is an MoE layer."""
        return self.is_moe and layer >= self.num_dense_layers

    # -- weight matrices ---------------------------------------------------------------------
    def attention_projections(self) -> tuple[Projection, ...]:
        """Weight matrices of one attention block, in execution order."""
        h, a = self.hidden_size, self.num_heads
        q_out = a * self.head_dim_qk
        o_in = a * self.head_dim_v
        if self.is_mla:
            assert self.kv_lora_rank is not None
            nope = self.head_dim_qk - self.qk_rope_head_dim
            projs: list[Projection] = []
            if self.q_lora_rank:
                projs += [
                    Projection("q_a", h, self.q_lora_rank, tp_split=False),
                    Projection("q_b", self.q_lora_rank, q_out),
                ]
            else:
                projs.append(Projection("q", h, q_out))
            projs += [
                Projection("kv_a", h, self.kv_lora_rank + self.qk_rope_head_dim, tp_split=False),
                Projection("kv_b", self.kv_lora_rank, a * (nope + self.head_dim_v)),
                Projection("o", o_in, h),
            ]
            return tuple(projs)
        kv_out = self.kv_heads * self.head_dim_qk
        return (
            Projection("qkv", h, q_out + kv_out + self.kv_heads * self.head_dim_v),
            Projection("o", o_in, h),
        )

    def mlp_projections(self, ffn_size: int) -> tuple[Projection, ...]:
        """Weight matrices of one MLP (dense or one expert) of width ``ffn_size``."""
        h = self.hidden_size
        up = 2 * ffn_size if self.gated_mlp else ffn_size
        return (Projection("fc1", h, up), Projection("fc2", ffn_size, h))

    # -- parameter counts --------------------------------------------------------------------
    def attention_params(self) -> int:
        """Weights of one attention block including its norm and biases."""
        projs = self.attention_projections()
        biases = sum(p.out_features for p in projs) if self.bias else 0
        return sum(p.params for p in projs) + biases + self._norm_params()

    def mlp_params(self, ffn_size: int) -> int:
        """Weights of one MLP of width ``ffn_size`` including biases (norm not included)."""
        projs = self.mlp_projections(ffn_size)
        biases = sum(p.out_features for p in projs) if self.bias else 0
        return sum(p.params for p in projs) + biases

    def _norm_params(self) -> int:
        return 2 * self.hidden_size if self.bias else self.hidden_size

    def dense_layer_params(self) -> int:
        """Weights of one dense transformer layer."""
        return self.attention_params() + self._norm_params() + self.mlp_params(self.ffn_size)

    def moe_layer_params(self) -> tuple[int, int]:
        """Weights of one MoE layer as (non-expert part, routed experts together)."""
        expert = self.mlp_params(self.expert_ffn_size)
        shared = self.num_shared_experts * expert
        router = self.hidden_size * self.num_experts
        non_expert = self.attention_params() + self._norm_params() + router + shared
        return non_expert, self.num_experts * expert

    def layer_params(self, layer: int) -> int:
        """Weights of the 0-based ``layer``."""
        if self.layer_is_moe(layer):
            dense, experts = self.moe_layer_params()
            return dense + experts
        return self.dense_layer_params()

    def embedding_params(self) -> int:
        """Input embedding (and learned positions) weights."""
        pos = self.seq_len * self.hidden_size if self.learned_position_embeddings else 0
        return self.vocab_size * self.hidden_size + pos

    def output_params(self) -> int:
        """Final norm plus the output projection when it is not tied to the embedding."""
        proj = 0 if self.tied_embeddings else self.vocab_size * self.hidden_size
        return self._norm_params() + proj

    @property
    def num_params(self) -> int:
        """Total weights of the model."""
        layers = self.num_dense_layers_effective * self.dense_layer_params()
        if self.is_moe:
            dense, experts = self.moe_layer_params()
            layers += self.num_moe_layers * (dense + experts)
        return layers + self.embedding_params() + self.output_params()

    @property
    def num_active_params(self) -> int:
        """Weights a single token passes through (routed experts counted top_k times)."""
        total = self.num_params
        if self.is_moe:
            expert = self.mlp_params(self.expert_ffn_size)
            total -= self.num_moe_layers * (self.num_experts - self.top_k) * expert
        return total

    @property
    def num_dense_layers_effective(self) -> int:
        """Number of dense layers (all of them in a dense model)."""
        return self.num_dense_layers if self.is_moe else self.num_layers
