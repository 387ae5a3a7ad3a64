"""Shared fixtures of the models tests: the published reference rows in ../shared/data, and the
small models and plans the generation tests share."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from trainsim.chakra_et import Node, attrs_dict
from trainsim.models import ModelSpec, ParallelPlan

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
PUBLISHED = DATA / "ground_truth" / "published.csv"


def published_rows(source_prefix: str, metric_prefix: str = "") -> list[dict[str, str]]:
    """Rows of published.csv from one paper, optionally of one metric family."""
    with PUBLISHED.open(newline="") as handle:
        return [
            row
            for row in csv.DictReader(handle)
            if row["source"].startswith(source_prefix) and row["metric"].startswith(metric_prefix)
        ]


def gpt_from_row(row: dict[str, str]) -> ModelSpec:
    """The Megatron GPT model a published row describes (GELU MLP 4h, learned positions)."""
    return ModelSpec(
        name=row["model"].lower(),
        num_layers=int(row["layers"]),
        hidden_size=int(row["hidden"]),
        num_heads=int(row["heads"]),
        seq_len=int(row["seq_len"]),
        vocab_size=int(row["vocab"]),
        learned_position_embeddings=True,
        dropout=True,
        bias=True,
    )


def plan_from_row(row: dict[str, str]) -> ParallelPlan:
    """The parallelism plan a published row describes (micro-batch 1 when not stated)."""
    return ParallelPlan(
        tp=int(row["tp"]),
        pp=int(row["pp"]),
        dp=int(row["dp"]),
        vpp=int(row["interleave"] or 1),
        sequence_parallel=row["sp"] == "1",
        recompute=row["recompute"],
        micro_batch_size=int(row["micro_batch"] or 1),
        global_batch_size=int(row["global_batch"]),
        attention="unfused",  # 2021-2022 Megatron-LM stored the s x s scores
    )


@pytest.fixture(scope="session")
def narayanan_rows() -> list[dict[str, str]]:
    rows = published_rows("Narayanan", "achieved_tflops_per_gpu")
    assert len(rows) == 10
    return rows


@pytest.fixture(scope="session")
def korthikanti_memory_rows() -> list[dict[str, str]]:
    rows = published_rows("Korthikanti", "mem_")
    assert len(rows) == 12
    return rows


DENSE = ModelSpec(
    name="tiny-dense",
    num_layers=8,
    hidden_size=256,
    num_heads=8,
    num_kv_heads=4,
    ffn_hidden_size=688,
    gated_mlp=True,
    vocab_size=1024,
    seq_len=256,
    tied_embeddings=False,
)
MOE = DENSE.model_copy(
    update={
        "name": "tiny-moe",
        "num_experts": 4,
        "top_k": 2,
        "num_shared_experts": 1,
        "expert_ffn_hidden_size": 128,
        "num_dense_layers": 2,
    }
)
PLAN_3D = ParallelPlan(tp=2, pp=2, dp=2, micro_batch_size=1, global_batch_size=8, zero_stage=1)


def attr_int(node: Node, name: str) -> int:
    """An integer attribute of a generated node."""
    value = attrs_dict(node.attr)[name]
    assert isinstance(value, int)
    return value
