"""Named model presets: published architectures, looked up by lower-case dashed names.

Sources: the GPT family of Narayanan et al. 2021 Table 1 (vocabulary 51,200, sequence 2,048,
GELU MLP of width 4h, learned positions, biases, dropout) and the 22B model of Korthikanti et
al. 2022; GPT-3 175B (Brown et al. 2020, vocabulary 50,257); Llama 2 (Touvron et al. 2023) and
Llama 3 (Dubey et al. 2024) from their released ``config.json``; Mixtral 8x7B (Jiang et al. 2024)
and DeepSeek-V3 (DeepSeek-AI 2024) from their released ``config.json``. Sequence lengths are the
pre-training lengths (Llama 2 4,096; Llama 3 8,192; Mixtral and DeepSeek-V3 4,096).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trainsim.models._errors import UnknownPresetError
from trainsim.models._spec import ModelSpec

__all__ = ["MODEL_PRESETS", "model_preset"]


def _gpt(name: str, layers: int, hidden: int, heads: int, vocab: int = 51200) -> dict[str, Any]:
    return {
        "name": name,
        "num_layers": layers,
        "hidden_size": hidden,
        "num_heads": heads,
        "vocab_size": vocab,
        "seq_len": 2048,
        "tied_embeddings": True,
        "learned_position_embeddings": True,
        "dropout": True,
        "bias": True,
    }


def _llama(
    name: str, layers: int, hidden: int, heads: int, kv: int, ffn: int, vocab: int, seq: int
) -> dict[str, Any]:
    return {
        "name": name,
        "num_layers": layers,
        "hidden_size": hidden,
        "num_heads": heads,
        "num_kv_heads": kv,
        "ffn_hidden_size": ffn,
        "gated_mlp": True,
        "vocab_size": vocab,
        "seq_len": seq,
        "tied_embeddings": False,
    }


_RAW: tuple[dict[str, Any], ...] = (
    _gpt("gpt-1.7b", 24, 2304, 24),
    _gpt("gpt-3.6b", 30, 3072, 32),
    _gpt("gpt-7.5b", 36, 4096, 32),
    _gpt("gpt-18b", 40, 6144, 48),
    _gpt("gpt-22b", 48, 6144, 64),
    _gpt("gpt-39b", 48, 8192, 64),
    _gpt("gpt-76b", 60, 10240, 80),
    _gpt("gpt-145b", 80, 12288, 96),
    _gpt("gpt-175b", 96, 12288, 96),
    _gpt("gpt-310b", 96, 16384, 128),
    _gpt("gpt-530b", 105, 20480, 128),
    _gpt("gpt-1t", 128, 25600, 160),
    _gpt("gpt3-175b", 96, 12288, 96, vocab=50257),
    _llama("llama2-7b", 32, 4096, 32, 32, 11008, 32000, 4096),
    _llama("llama2-13b", 40, 5120, 40, 40, 13824, 32000, 4096),
    _llama("llama2-70b", 80, 8192, 64, 8, 28672, 32000, 4096),
    _llama("llama3-8b", 32, 4096, 32, 8, 14336, 128256, 8192),
    _llama("llama3-70b", 80, 8192, 64, 8, 28672, 128256, 8192),
    _llama("llama3-405b", 126, 16384, 128, 8, 53248, 128256, 8192),
    {
        **_llama("mixtral-8x7b", 32, 4096, 32, 8, 14336, 32000, 4096),
        "num_experts": 8,
        "top_k": 2,
        "expert_ffn_hidden_size": 14336,
    },
    {
        **_llama("deepseek-v3", 61, 7168, 128, 128, 18432, 129280, 4096),
        "head_dim": 128,
        "q_lora_rank": 1536,
        "kv_lora_rank": 512,
        "qk_rope_head_dim": 64,
        "v_head_dim": 128,
        "num_experts": 256,
        "top_k": 8,
        "num_shared_experts": 1,
        "expert_ffn_hidden_size": 2048,
        "num_dense_layers": 3,
    },
)

#: Every model preset by name.
MODEL_PRESETS: Mapping[str, ModelSpec] = {raw["name"]: ModelSpec(**raw) for raw in _RAW}


def model_preset(name: str) -> ModelSpec:
    """Return the preset called ``name`` (case-insensitive; underscores read as dashes)."""
    key = name.strip().lower().replace("_", "-")
    try:
        return MODEL_PRESETS[key]
    except KeyError:
        known = ", ".join(MODEL_PRESETS)
        raise UnknownPresetError(f"model={name!r} is not a preset (known: {known})") from None
