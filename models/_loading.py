"""Read a ModelSpec from a preset name, a YAML/JSON file of its fields, or a HF ``config.json``.

HuggingFace configs are mapped by key: ``num_hidden_layers``/``n_layer``, ``hidden_size``/
``n_embd``, ``num_attention_heads``/``n_head``, ``num_key_value_heads``, ``intermediate_size``,
``vocab_size``, ``max_position_embeddings``/``n_positions`` (the sequence length is the
smaller of it and ``HF_TRAINING_SEQ_LEN`` unless given),
``tie_word_embeddings``; a SiLU/SwiGLU activation (``hidden_act`` silu or swiglu) means a gated
MLP; Mixtral's ``num_local_experts``, Qwen-MoE's ``num_experts``, and DeepSeek's
``n_routed_experts``, ``n_shared_experts``, ``moe_intermediate_size``,
``first_k_dense_replace``, ``q_lora_rank``, ``kv_lora_rank``, ``qk_rope_head_dim``,
``qk_nope_head_dim`` and ``v_head_dim`` select the MoE and MLA fields.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from trainsim.models._errors import InvalidModelError
from trainsim.models._presets import MODEL_PRESETS, model_preset
from trainsim.models._spec import ModelSpec

__all__ = [
    "HF_TRAINING_SEQ_LEN",
    "hf_max_positions",
    "load_model",
    "model_from_hf_config",
    "model_from_mapping",
]


def _first(cfg: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        if cfg.get(key) is not None:
            return cfg[key]
    return None


def _require(cfg: Mapping[str, Any], *keys: str) -> Any:
    value = _first(cfg, *keys)
    if value is None:
        raise InvalidModelError(f"HF config lacks {' / '.join(keys)}")
    return value


#: The sequence a config.json model trains at unless one is given. ``max_position_embeddings``
#: is what the released model can attend to after long-context extension (131,072 for Llama
#: 3.1 and Qwen2-7B), not what pre-training ran: Llama 3 pre-trained at 8,192 tokens and
#: extended to 128K only in a final stage (Llama 3 paper, section 3.4).
HF_TRAINING_SEQ_LEN = 8192


def hf_max_positions(config: Mapping[str, Any]) -> int | None:
    """The ``max_position_embeddings`` (or ``n_positions``) of a HF config, if it states one."""
    value = _first(config, "max_position_embeddings", "n_positions")
    return int(value) if value is not None else None


def model_from_hf_config(
    config: Mapping[str, Any] | str | Path, *, name: str | None = None, seq_len: int | None = None
) -> ModelSpec:
    """Build a ModelSpec from a HuggingFace ``config.json`` (a path or its parsed mapping)."""
    if isinstance(config, (str, Path)):
        path = Path(config)
        cfg: Mapping[str, Any] = json.loads(path.read_text())
        default_name = path.parent.name.lower() or "hf-model"
    else:
        cfg = config
        default_name = "hf-model"
    hidden = int(_require(cfg, "hidden_size", "n_embd", "d_model"))
    heads = int(_require(cfg, "num_attention_heads", "n_head"))
    act = str(_first(cfg, "hidden_act", "activation_function") or "gelu").lower()
    gated = act in ("silu", "swiglu", "swish") or "glu" in act
    model_type = str(cfg.get("model_type", "")).lower()
    fields: dict[str, Any] = {
        "name": (name or str(cfg.get("_name_or_path") or default_name)).lower().replace("_", "-"),
        "num_layers": int(_require(cfg, "num_hidden_layers", "n_layer", "num_layers")),
        "hidden_size": hidden,
        "num_heads": heads,
        "num_kv_heads": _first(cfg, "num_key_value_heads"),
        "ffn_hidden_size": _first(cfg, "intermediate_size", "n_inner", "ffn_dim"),
        "gated_mlp": gated,
        "vocab_size": int(_require(cfg, "vocab_size")),
        "seq_len": seq_len
        or min(int(_require(cfg, "max_position_embeddings", "n_positions")), HF_TRAINING_SEQ_LEN),
        "tied_embeddings": bool(cfg.get("tie_word_embeddings", True)),
        "learned_position_embeddings": model_type in ("gpt2", "gpt_neo", "opt", "gpt_bigcode"),
        "bias": bool(_first(cfg, "attention_bias", "bias") or model_type in ("gpt2", "opt")),
    }
    if cfg.get("head_dim") is not None:
        fields["head_dim"] = int(cfg["head_dim"])
    experts = _first(cfg, "n_routed_experts", "num_local_experts", "num_experts")
    if experts:
        fields["num_experts"] = int(experts)
        fields["top_k"] = int(_require(cfg, "num_experts_per_tok", "moe_topk", "top_k"))
        fields["num_shared_experts"] = int(cfg.get("n_shared_experts") or 0)
        fields["expert_ffn_hidden_size"] = _first(cfg, "moe_intermediate_size", "intermediate_size")
        fields["num_dense_layers"] = int(cfg.get("first_k_dense_replace") or 0)
    if cfg.get("kv_lora_rank"):
        fields["kv_lora_rank"] = int(cfg["kv_lora_rank"])
        fields["q_lora_rank"] = cfg.get("q_lora_rank")
        fields["qk_rope_head_dim"] = int(cfg.get("qk_rope_head_dim") or 0)
        fields["head_dim"] = int(_require(cfg, "qk_nope_head_dim"))
        fields["v_head_dim"] = cfg.get("v_head_dim")
        fields["num_kv_heads"] = None
    return model_from_mapping(fields, source="HF config")


def model_from_mapping(data: Mapping[str, Any], *, source: str = "model") -> ModelSpec:
    """Validate a mapping of ModelSpec fields; errors name the field and the allowed range."""
    try:
        return ModelSpec.model_validate(dict(data))
    except ValidationError as exc:
        err = exc.errors()[0]
        msg = str(err["msg"]).removeprefix("Value error, ")
        loc = ".".join(str(p) for p in err["loc"])
        where = f"{loc}={err['input']!r}: " if loc else ""
        raise InvalidModelError(f"{source}: {where}{msg}") from None


def load_model(spec: str | Path | Mapping[str, Any] | ModelSpec) -> ModelSpec:
    """Resolve a preset name, a YAML/JSON file (ModelSpec fields or a HF config) or a mapping."""
    if isinstance(spec, ModelSpec):
        return spec
    if isinstance(spec, Mapping):
        return _from_any_mapping(spec, source="model")
    text = str(spec)
    if text.strip().lower().replace("_", "-") in MODEL_PRESETS:
        return model_preset(text)
    path = Path(text)
    if not path.is_file():
        return model_preset(text)  # raises with the list of presets
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, Mapping):
        raise InvalidModelError(f"model file {path} must hold a mapping")
    return _from_any_mapping(data, source=str(path), name=path.stem)


def _from_any_mapping(
    data: Mapping[str, Any], *, source: str, name: str | None = None
) -> ModelSpec:
    if "num_layers" in data or ("hidden_size" in data and "num_heads" in data):
        return model_from_mapping(data, source=source)
    return model_from_hf_config(data, name=name)
