"""Shared fixtures of the models tests: the published reference rows in ../shared/data."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from models import ModelSpec, ParallelPlan

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
