"""Benchmark: a space of over 100,000 plans, end to end, with the fast tier.

The sweep's default space for five models (Llama 3 8B/70B/405B, GPT-3 175B, Mixtral 8x7B
with EP 1-8) on six H100 GPU counts (512 to 16,384), each at 4M tokens per step (the
sweep's own choice of global batch): every combination enumerated and checked, pruned by
memory, and the rest timed by the fast tier (no engine verification, which the ``sweep``
benchmark measures). Reported: combinations, valid plans, plans timed, wall time and plans
timed per second, on all cores (local executor). ``python -m benchmarks sweep_space``.
"""

from __future__ import annotations

import os
import time

from trainsim.studies import SearchSpace, sweep

__all__ = ["main"]

_MODELS = ("llama3-8b", "llama3-70b", "llama3-405b", "gpt3-175b", "mixtral-8x7b")
_GPUS = (512, 1024, 2048, 4096, 8192, 16384)
_DEVICE = "h100-sxm"


def _space(model: str) -> SearchSpace:
    return SearchSpace(ep=[1, 2, 4, 8]) if model.startswith("mixtral") else SearchSpace()


def main() -> None:
    """Run every sweep of the space and print the totals."""
    combinations = valid = timed = pruned = 0
    start = time.perf_counter()
    for model in _MODELS:
        for gpus in _GPUS:
            space = _space(model)
            result = sweep(model, _DEVICE, gpus, space=space, executor="local", verify=0)
            summary = result.summary()
            combinations += space.size()
            timed += summary["plans_evaluated"]
            pruned += summary["plans_pruned"]
            valid += summary["plans_evaluated"] + summary["plans_pruned"]
    wall_s = time.perf_counter() - start
    print(
        f"  {len(_MODELS)} models x {len(_GPUS)} GPU counts on {os.cpu_count()} cores: "
        f"{combinations} combinations, {valid} valid plans, {pruned} pruned by memory, "
        f"{timed} timed by the fast tier in {wall_s:.0f} s ({timed / wall_s:.0f} plans/s, "
        f"{combinations / wall_s:.0f} combinations/s)"
    )


if __name__ == "__main__":
    main()
