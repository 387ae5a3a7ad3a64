"""Engine speed: per-rank mode on 256 and 1,024 ranks of 1,500 nodes, and rank-class 405B.

The per-rank workload is the one ASTRA-sim's figures are quoted for: per rank 500 forward and
500 backward compute nodes and 500 all-reduces of 8 MiB (one after each backward node) on a
3-D Ring x FullyConnected x Switch network. Figures are medians of several runs.
"""

from __future__ import annotations

import statistics
import time

from trainsim.chakra_et import CollectiveCommType, ETGraph, NodeType, new_metadata, new_node
from trainsim.engine import System, Workload, simulate
from trainsim.topology import Dimension, DimKind, multi_dimensional

RUNS = 3


def dp_graph(layers: int = 500) -> ETGraph:
    """500 forward, 500 backward, 500 all-reduces (8 MiB) of one data-parallel rank."""
    graph = ETGraph(new_metadata())
    node_id = 0
    prev = None
    for layer in range(layers):
        graph.add(
            new_node(
                node_id,
                f"fwd{layer}",
                NodeType.COMP_NODE,
                duration_micros=100,
                data_deps=[prev] if prev is not None else [],
            )
        )
        prev = node_id
        node_id += 1
    for layer in reversed(range(layers)):
        graph.add(
            new_node(
                node_id, f"bwd{layer}", NodeType.COMP_NODE, duration_micros=200, data_deps=[prev]
            )
        )
        prev = node_id
        node_id += 1
        graph.add(
            new_node(
                node_id,
                f"ar{layer}",
                NodeType.COMM_COLL_NODE,
                data_deps=[prev],
                attrs={"comm_type": int(CollectiveCommType.ALL_REDUCE), "comm_size": 8 << 20},
            )
        )
        node_id += 1
    return graph


def network(ranks: int) -> System:
    """Ring(8) x FullyConnected(4) x Switch(rest) at 200/100/50 GB/s."""
    rest = ranks // 32
    dims = [
        Dimension(DimKind.RING, 8, 200.0, 0.5),
        Dimension(DimKind.FULLY_CONNECTED, 4, 100.0, 1.0),
        Dimension(DimKind.SWITCH, rest, 50.0, 2.0),
    ]
    return System.with_topology(multi_dimensional(dims))


def _median(fn: object) -> float:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def llama3_405b() -> None:
    """One step of Llama 3 405B on 16,384 H100 (TP 8, PP 16, DP 128) in rank-class mode."""
    from trainsim.engine import cluster_system, plan_workload
    from trainsim.models import ParallelPlan, model_preset

    model = model_preset("llama3-405b")
    plan = ParallelPlan.for_gpus(
        16384,
        tp=8,
        pp=16,
        global_batch_size=2048,
        first_stage_layers=7,
        last_stage_layers=7,
        zero_stage=1,
    )
    start = time.perf_counter()
    system = cluster_system("h100-sxm", 16384)
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    workload = plan_workload(model, plan)
    generate_s = time.perf_counter() - start
    start = time.perf_counter()
    result = simulate(workload, system)
    cold_s = time.perf_counter() - start
    warm_s = _median(lambda: simulate(workload, system))
    print(
        f"llama3-405b rank-class (16 stages, {workload.num_nodes:,} nodes): network build "
        f"{build_s:.2f} s, ET generation {generate_s:.2f} s, simulate cold {cold_s:.2f} s, "
        f"warm {warm_s:.3f} s (median); step {result.step_time_s:.2f} s"
    )


def per_rank(ranks: int, *, shared: bool) -> None:
    """Per-rank mode; ``shared`` gives every rank the same graph object (compiled once)."""
    graph = dp_graph()
    graphs = {r: graph if shared else dp_graph() for r in range(ranks)}
    workload = Workload.from_graphs(graphs, world_size=ranks)
    system = network(ranks)
    result = simulate(workload, system)
    wall = _median(lambda: simulate(workload, system))
    how = "one shared graph" if shared else "distinct graphs"
    print(
        f"per-rank {ranks:>5} ranks x {len(graph)} nodes ({how}): {wall:6.2f} s, "
        f"{workload.num_nodes / wall:,.0f} nodes/s, step {result.step_time_s * 1e3:,.2f} ms"
    )


def main() -> None:
    """Print wall time and nodes/s of each case."""
    llama3_405b()
    for ranks in (256, 1024):
        per_rank(ranks, shared=True)
    per_rank(256, shared=False)


if __name__ == "__main__":
    main()
