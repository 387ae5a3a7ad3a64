"""Each group kind has its own communication stream: a pipeline send does not queue behind
the data-parallel gradient reduction of another layer."""

from __future__ import annotations

from trainsim.engine import Scheduling, cluster_system, predict
from trainsim.models import ParallelPlan, model_from_mapping

MODEL = model_from_mapping(
    {
        "name": "gpt-8l",
        "num_layers": 8,
        "hidden_size": 4096,
        "num_heads": 32,
        "vocab_size": 32000,
        "seq_len": 2048,
    }
)


def _step_s(dp: int, per_kind: bool) -> float:
    plan = ParallelPlan(pp=4, dp=dp, global_batch_size=8 * dp, recompute="full")
    system = cluster_system(
        "a100-80gb", 4 * dp, scheduling=Scheduling(comm_stream_per_kind=per_kind)
    )
    return predict(MODEL, plan, system).step_time_s


def test_gradient_reduction_no_longer_holds_up_the_pipeline_drain() -> None:
    alone = _step_s(1, True)
    separate = _step_s(2, True)
    shared = _step_s(2, False)
    # Only the last stage's exposed reductions add to the step when streams are separate.
    assert separate < 1.15 * alone
    assert shared > separate
