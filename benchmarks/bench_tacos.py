"""Benchmark of TACOS synthesis: quality against the official code, wall time and its growth.

Quality: every reference run of the official C++ code (``tacos-allgather.json``) is repeated
here with the same topology file, size and chunks per NPU; the table gives our All-Gather
time, the reference's best trial, the bandwidth lower bound and our fraction of it.

Speed: one All-Gather synthesis (1 chunk per NPU, 64 MiB output, 50 GiB/s and 0.5 us links)
on the 2D tori 8x8 and 16x16, the 3D tori 8x8x8 (512 NPUs) and 16x16x16 (4,096 NPUs), as
the median of several runs, with the growth exponent fitted on log(time) against log(NPUs).
Aims (issue 5): 512 NPUs under 10 s (the reference C++ takes 9.7 s, the paper 6.1 min),
4,096 NPUs under 5 minutes.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from pathlib import Path

import numpy as np

from trainsim.collectives import synthesize_tacos
from trainsim.collectives._tacos import gather_once
from trainsim.collectives._tacos_network import link_graph
from trainsim.topology import GIB_PER_GB, read_edge_list, torus

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "reference"
OUTPUT_BYTES = 64 * 2**20
#: (dims, runs); TACOS_BENCH_QUICK=1 skips the 4,096-NPU case.
SCALES: list[tuple[list[int], int]] = [
    ([8, 8], 5),
    ([16, 16], 5),
    ([8, 8, 8], 3),
    ([16, 16, 16], 2),
]


def _quality() -> None:
    cases = json.loads((DATA / "tacos-allgather.json").read_text())["cases"]
    print(
        f"{'case':<22}{'ours_us':>10}{'ref_best_us':>13}{'bound_us':>10}"
        f"{'ours/bound':>12}{'ref/bound':>11}{'synth_s':>9}"
    )
    for case in cases:
        topo = read_edge_list(DATA / "tacos-topologies" / f"{case['name']}.txt")
        n = case["npus"]
        result = synthesize_tacos(
            "all_gather",
            case["collective_output_bytes"] / n,
            topo,
            chunks_per_npu=case["chunks_per_npu"],
            trials=5,
            seed=0,
        )
        ref = case["allgather_time_us"]["min"]
        name = f"{case['name']} c={case['chunks_per_npu']}"
        print(
            f"{name:<22}{result.time_us:>10.2f}{ref:>13.2f}{result.lower_bound_us:>10.2f}"
            f"{result.efficiency:>12.3f}{result.lower_bound_us / ref:>11.3f}"
            f"{result.synthesis_s:>9.3f}"
        )


def _scaling() -> None:
    quick = os.environ.get("TACOS_BENCH_QUICK") == "1"
    sizes: list[int] = []
    medians: list[float] = []
    print(f"{'topology':<14}{'npus':>6}{'median_s':>10}{'min_s':>9}{'runs':>6}{'time_us':>10}")
    for dims, runs in SCALES:
        n = math.prod(dims)
        if quick and n > 512:
            continue
        topo = torus(dims, bandwidth_gbps=50 * GIB_PER_GB, latency_us=0.5)
        walls = []
        time_us = 0.0
        for run in range(runs):
            start = time.perf_counter()
            graph = link_graph(topo)
            result = gather_once(graph, OUTPUT_BYTES / n, 1, np.random.default_rng(run))
            walls.append(time.perf_counter() - start)
            time_us = result.time_us
        median = statistics.median(walls)
        sizes.append(n)
        medians.append(median)
        label = "x".join(map(str, dims))
        print(f"{label:<14}{n:>6}{median:>10.3f}{min(walls):>9.3f}{runs:>6}{time_us:>10.2f}")
    if len(sizes) >= 2:
        slope = float(np.polyfit(np.log(sizes), np.log(medians), 1)[0])
        print(f"fitted growth: wall time ~ NPUs^{slope:.2f}")


def main() -> None:
    """Print the quality table against the reference and the synthesis wall times."""
    _quality()
    _scaling()


if __name__ == "__main__":
    main()
