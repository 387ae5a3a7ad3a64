"""ModelSpec: presets against published parameter counts, and loading from files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.models.conftest import gpt_from_row
from trainsim.models import (
    HF_TRAINING_SEQ_LEN,
    MODEL_PRESETS,
    InvalidModelError,
    ModelSpec,
    UnknownPresetError,
    load_model,
    model_from_hf_config,
    model_from_mapping,
    model_preset,
)

# Published sizes in billions (papers and model cards).
PUBLISHED_PARAMS_B = {
    "gpt3-175b": 175.0,
    "llama2-7b": 6.74,
    "llama2-13b": 13.0,
    "llama2-70b": 69.0,
    "llama3-8b": 8.03,
    "llama3-70b": 70.6,
    "llama3-405b": 405.8,
    "mixtral-8x7b": 46.7,
    "deepseek-v3": 671.0,
}


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS_B))
def test_preset_parameter_counts_match_published(name: str) -> None:
    billions = MODEL_PRESETS[name].num_params / 1e9
    assert billions == pytest.approx(PUBLISHED_PARAMS_B[name], rel=0.01)


def test_active_parameters_of_moe_presets() -> None:
    assert MODEL_PRESETS["mixtral-8x7b"].num_active_params / 1e9 == pytest.approx(12.9, rel=0.01)
    assert MODEL_PRESETS["deepseek-v3"].num_active_params / 1e9 == pytest.approx(37.0, rel=0.02)
    assert MODEL_PRESETS["llama3-8b"].num_active_params == MODEL_PRESETS["llama3-8b"].num_params


def test_narayanan_table_sizes_match_their_presets(narayanan_rows: list[dict[str, str]]) -> None:
    for row in narayanan_rows:
        spec = gpt_from_row(row)
        text = row["params"].rstrip("B")
        # The table prints sizes rounded to its last digit: match within half of it.
        half_digit = 0.5 * 10 ** -len(text.partition(".")[2])
        assert abs(spec.num_params / 1e9 - float(text)) <= half_digit, row["model"]
        preset = model_preset(row["model"].lower())
        assert preset.num_params == spec.num_params


def test_preset_names_are_lower_case_with_dashes() -> None:
    for name in MODEL_PRESETS:
        assert name == name.lower() and "_" not in name and " " not in name
    assert model_preset("Llama3_405B").name == "llama3-405b"


def test_unknown_preset_lists_known_names() -> None:
    with pytest.raises(UnknownPresetError, match="llama3-405b"):
        model_preset("llama9-1t")


def test_invalid_specs_name_field_and_numbers() -> None:
    # Direct construction raises pydantic's ValidationError (a ValueError) with the same text.
    with pytest.raises(ValueError, match="hidden_size=100 must be divisible by num_heads=3"):
        ModelSpec(num_layers=2, hidden_size=100, num_heads=3, vocab_size=10, seq_len=8)
    with pytest.raises(InvalidModelError, match=r"^model: top_k=3.*num_experts=2"):
        model_from_mapping(
            dict(
                num_layers=2,
                hidden_size=64,
                num_heads=4,
                vocab_size=10,
                seq_len=8,
                num_experts=2,
                top_k=3,
            )
        )
    with pytest.raises(InvalidModelError, match="num_layers=0: Input should be greater"):
        load_model(
            {"num_layers": 0, "hidden_size": 64, "num_heads": 4, "vocab_size": 1, "seq_len": 1}
        )


def _write(tmp_path: Path, name: str, cfg: dict[str, object]) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    path = folder / "config.json"
    path.write_text(json.dumps(cfg))
    return path


def test_hf_llama_config_matches_preset(tmp_path: Path) -> None:
    cfg = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_act": "silu",
        "hidden_size": 16384,
        "intermediate_size": 53248,
        "num_attention_heads": 128,
        "num_hidden_layers": 126,
        "num_key_value_heads": 8,
        "vocab_size": 128256,
        "max_position_embeddings": 131072,
        "tie_word_embeddings": False,
    }
    spec = model_from_hf_config(_write(tmp_path, "Llama-3.1-405B", cfg), seq_len=8192)
    preset = MODEL_PRESETS["llama3-405b"]
    assert spec.num_params == preset.num_params
    assert spec.name == "llama-3.1-405b"
    assert spec.seq_len == 8192
    # Not the 131,072 positions it can attend to: the sequence pre-training ran at.
    loaded = load_model(tmp_path / "Llama-3.1-405B" / "config.json")
    assert loaded.seq_len == HF_TRAINING_SEQ_LEN == 8192
    short = model_from_hf_config({**cfg, "max_position_embeddings": 2048})
    assert short.seq_len == 2048


def test_hf_mixtral_and_deepseek_configs(tmp_path: Path) -> None:
    mixtral = {
        "model_type": "mixtral",
        "hidden_act": "silu",
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_attention_heads": 32,
        "num_hidden_layers": 32,
        "num_key_value_heads": 8,
        "num_local_experts": 8,
        "num_experts_per_tok": 2,
        "vocab_size": 32000,
        "max_position_embeddings": 32768,
        "tie_word_embeddings": False,
    }
    spec = model_from_hf_config(mixtral, seq_len=4096)
    assert spec.num_params == MODEL_PRESETS["mixtral-8x7b"].num_params
    deepseek = {
        "model_type": "deepseek_v3",
        "hidden_act": "silu",
        "hidden_size": 7168,
        "intermediate_size": 18432,
        "moe_intermediate_size": 2048,
        "num_attention_heads": 128,
        "num_hidden_layers": 61,
        "num_key_value_heads": 128,
        "n_routed_experts": 256,
        "n_shared_experts": 1,
        "num_experts_per_tok": 8,
        "first_k_dense_replace": 3,
        "q_lora_rank": 1536,
        "kv_lora_rank": 512,
        "qk_nope_head_dim": 128,
        "qk_rope_head_dim": 64,
        "v_head_dim": 128,
        "vocab_size": 129280,
        "max_position_embeddings": 163840,
        "tie_word_embeddings": False,
    }
    spec = model_from_hf_config(deepseek, seq_len=4096)
    assert spec.num_params == MODEL_PRESETS["deepseek-v3"].num_params
    assert spec.is_mla and spec.head_dim_qk == 192 and spec.head_dim_v == 128


def test_hf_gpt2_config() -> None:
    gpt2 = {
        "model_type": "gpt2",
        "activation_function": "gelu_new",
        "n_embd": 768,
        "n_head": 12,
        "n_layer": 12,
        "n_positions": 1024,
        "vocab_size": 50257,
    }
    spec = model_from_hf_config(gpt2)
    assert not spec.gated_mlp and spec.learned_position_embeddings and spec.tied_embeddings
    assert spec.num_params / 1e6 == pytest.approx(124.4, rel=0.01)  # GPT-2 small


def test_hf_config_missing_key_is_named() -> None:
    with pytest.raises(InvalidModelError, match="vocab_size"):
        model_from_hf_config({"hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": 2})


def test_yaml_file_of_fields(tmp_path: Path) -> None:
    path = tmp_path / "tiny.yaml"
    path.write_text(
        "num_layers: 4\nhidden_size: 256\nnum_heads: 8\nnum_kv_heads: 2\n"
        "gated_mlp: true\nffn_hidden_size: 688\nvocab_size: 1000\nseq_len: 512\n"
    )
    spec = load_model(path)
    assert spec.name == "custom" and spec.kv_heads == 2 and spec.gated_mlp
    bad = tmp_path / "bad.yaml"
    bad.write_text("num_layers: 4\nhidden_size: 256\nnum_heads: 8\nvocab_size: 10\nseq_len: -1\n")
    with pytest.raises(InvalidModelError, match="seq_len"):
        load_model(bad)
