"""Memory per GPU against Korthikanti et al. 2022, ZeRO sharding and capacity checks."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.models.conftest import gpt_from_row, plan_from_row
from trainsim.models import (
    TIGHT_MARGIN_FRACTION,
    MemoryCapacityError,
    ParallelPlan,
    check_memory,
    device_preset,
    memory_by_stage,
    memory_fit,
    memory_per_gpu,
    model_preset,
)

GIB = 2**30


def test_korthikanti_memory_rows_within_5_percent(
    korthikanti_memory_rows: list[dict[str, str]],
) -> None:
    errors = []
    for row in korthikanti_memory_rows:
        model, plan = gpt_from_row(row), plan_from_row(row)
        stages = memory_by_stage(model, plan)
        if row["metric"] == "mem_activations_GiB_per_gpu":
            # The first stage holds the most micro-batches in flight: the paper's figure.
            predicted = stages[0].activations_bytes / GIB
        else:
            # The figure counts the transformer layers' 12 l h^2 weights at 18 bytes each, so
            # compare a stage without the embedding (a middle one; the only one when pp = 1).
            predicted = stages[len(stages) // 2].states_bytes / GIB
        published = float(row["value"])
        error = abs(predicted - published) / published
        errors.append(error)
        assert error < 0.05, (row["model"], row["metric"], row["recompute"], predicted, published)
    assert max(errors) < 0.025  # measured: 2.4% at worst (GPT-1T activations, embedding mask)


def test_zero_stages_shrink_states() -> None:
    model = model_preset("llama3-8b")
    base = {"dp": 8, "global_batch_size": 8}
    states = [
        memory_per_gpu(model, ParallelPlan(**base, zero_stage=z)).states_bytes for z in range(4)
    ]
    assert states == sorted(states, reverse=True) and len(set(states)) == 4
    params = model.num_params
    assert states[0] == pytest.approx(18 * params, rel=1e-6)
    assert states[3] == pytest.approx(18 * params / 8, rel=1e-3)


def test_recompute_and_sequence_parallel_shrink_activations() -> None:
    model = model_preset("llama3-70b")
    acts = {}
    for recompute in ("none", "selective", "full"):
        for sp in (False, True):
            plan = ParallelPlan(
                tp=8,
                pp=4,
                dp=2,
                global_batch_size=16,
                recompute=recompute,
                sequence_parallel=sp,
                attention="unfused",
            )
            acts[recompute, sp] = memory_per_gpu(model, plan).activations_bytes
    assert acts["none", False] > acts["selective", False] > acts["full", False]
    assert acts["none", True] < acts["none", False]
    assert acts["full", True] < acts["full", False]


def test_first_stage_holds_the_most_activations() -> None:
    model = model_preset("gpt-175b")
    plan = ParallelPlan(tp=8, pp=8, global_batch_size=64)
    acts = [m.activations_bytes for m in memory_by_stage(model, plan)]
    assert acts[0] == max(acts)
    assert acts[1:-1] == sorted(acts[1:-1], reverse=True)


def test_moe_expert_weights_shard_over_ep() -> None:
    model = model_preset("mixtral-8x7b")
    one = memory_per_gpu(model, ParallelPlan(dp=8, global_batch_size=8))
    eight = memory_per_gpu(model, ParallelPlan(dp=8, ep=8, global_batch_size=8))
    assert eight.weights_bytes < one.weights_bytes / 4


def test_capacity_error_names_numbers() -> None:
    model = model_preset("llama3-70b")
    with pytest.raises(
        MemoryCapacityError, match=r"GiB.*exceeds the 79.0 GiB usable of h100-sxm \(80.0 GiB"
    ):
        check_memory(model, ParallelPlan(tp=8), device_preset("h100-sxm"))
    fits = check_memory(
        model,
        ParallelPlan(
            tp=8,
            pp=4,
            dp=4,
            global_batch_size=64,
            sequence_parallel=True,
            recompute="selective",
            zero_stage=1,
        ),
        device_preset("h100-sxm"),
    )
    assert fits.total_bytes < 79 * GIB
    gib = fits.to_gib()
    assert gib["total_gib"] == pytest.approx(
        sum(
            gib[k]
            for k in (
                "weights_gib",
                "gradients_gib",
                "optimizer_gib",
                "activations_gib",
                "buffers_gib",
            )
        )
    )


def test_usable_memory_headroom_and_tight_verdict() -> None:
    """Usable is the capacity less the runtime's share; a small headroom is called tight."""
    h100 = device_preset("h100-sxm")
    assert h100.usable_memory_gib == pytest.approx(h100.memory_gib - h100.runtime_reserved_gib)
    margin = TIGHT_MARGIN_FRACTION * h100.usable_memory_gib
    roomy = memory_fit(40 * GIB, h100)
    assert roomy.verdict == "fits" and roomy.headroom_gib == pytest.approx(39.0)
    tight = memory_fit((h100.usable_memory_gib - margin / 2) * GIB, h100)
    assert tight.verdict == "tight" and tight.fits
    assert "tight (under the" in tight.describe()
    over = memory_fit(79.12 * GIB, h100)  # fitted 80 GiB before the runtime's share
    assert over.verdict == "does not fit" and not over.fits and over.headroom_gib < 0
    own = h100.model_copy(update={"runtime_reserved_gib": 4.0})
    assert memory_fit(40 * GIB, own).usable_gib == pytest.approx(76.0)


@settings(max_examples=60, deadline=None)
@given(need_gib=st.floats(min_value=0.0, max_value=200.0))
def test_verdict_is_ordered_by_need(need_gib: float) -> None:
    h100 = device_preset("h100-sxm")
    fit = memory_fit(need_gib * GIB, h100)
    assert fit.headroom_gib == pytest.approx(h100.usable_memory_gib - need_gib)
    assert fit.fits == (need_gib <= h100.usable_memory_gib)
    if fit.verdict == "tight":
        assert 0 <= fit.headroom_gib < fit.margin_gib
