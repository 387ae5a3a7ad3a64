"""``trainsim synthesize``: a TACOS collective for a network file, timed and exported."""

from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = ["register"]


class SynthesizeError(ValueError):
    """A ``synthesize`` option the user has to fix (a bad count)."""


def register(sub: Any) -> None:
    """Add the ``synthesize`` subcommand."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "synthesize",
        help="synthesize a collective for any topology with TACOS (MSCCL export)",
        description="Synthesize All-Gather, Reduce-Scatter or All-Reduce for a network by "
        "TACOS greedy link-chunk matching; print its time and optionally export the schedule.",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--edges", metavar="FILE.txt", help="edge list: src dst GiBps latency_us")
    where.add_argument("--network", metavar="NET.yml", help="ASTRA-sim network YAML")
    where.add_argument("--topology", metavar="SPEC", help="spec string, e.g. ring:8,ring:8")
    parser.add_argument(
        "--op", default="all_gather", help="all_gather, reduce_scatter or all_reduce"
    )
    parser.add_argument(
        "--size",
        default="64MiB",
        help="All-Gather output buffer (each NPU contributes size/N), e.g. 64MiB (default)",
    )
    parser.add_argument("--chunks-per-npu", type=int, default=1, help="chunks per NPU (1)")
    parser.add_argument("--trials", type=int, default=5, help="randomized trials, best kept (5)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (0)")
    parser.add_argument("--ranks", default=None, help="rank group, e.g. 0-7 or 0,4,8 (all)")
    parser.add_argument(
        "-o", "--output", metavar="FILE", help="write the schedule: .json (MSCCL-style) or .xml"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from trainsim.collectives import (
        CollectiveOp,
        SystemConfig,
        evaluate,
        routes_for,
        synthesize_tacos,
        write_msccl,
    )

    from ._collective import _parse_ranks, parse_size, topology_from_flags

    topo = topology_from_flags(
        args.network,
        args.edges,
        args.topology,
        usage="give the network: --edges FILE.txt, --network NET.yml or --topology",
    )
    if args.chunks_per_npu < 1:
        raise SynthesizeError(f"--chunks-per-npu must be >= 1, got {args.chunks_per_npu}")
    if args.trials < 1:
        raise SynthesizeError(f"--trials must be >= 1, got {args.trials}")
    op = CollectiveOp.parse(args.op)
    ranks = _parse_ranks(args.ranks, topo.num_npus)
    total = parse_size(args.size)
    # --size is the All-Gather output; the library takes the per-rank shard for all-gather.
    size = total / len(ranks) if op is CollectiveOp.ALL_GATHER else float(total)
    result = synthesize_tacos(
        op,
        size,
        topo,
        ranks=ranks,
        chunks_per_npu=args.chunks_per_npu,
        trials=args.trials,
        seed=args.seed,
    )
    sched = result.schedule
    nodes = int(max(topo.graph.nodes)) + 1
    executed = evaluate(
        [sched], [routes_for(sched, topo)], SystemConfig(), congestion=True, num_nodes=nodes
    )
    record: dict[str, Any] = {
        "network": topo.name,
        "size_bytes": total,
        **result.to_dict(),
        "congestion_time_us": executed.time_ns / 1000.0,
    }
    if args.output:
        record["output"] = str(write_msccl(result, args.output))
    if args.json:
        print(json.dumps(record))
        return 0
    print(
        f"tacos {op.value} of {total} B on {topo.name}: {len(ranks)} NPUs, "
        f"{args.chunks_per_npu} chunk(s)/NPU, best of {args.trials} trial(s)"
    )
    executed_us = record["congestion_time_us"]
    print(f"time          {result.time_us:.3f} us  (congestion model {executed_us:.3f} us)")
    print(f"lower bound   {result.lower_bound_us:.3f} us  ({100 * result.efficiency:.1f}% of it)")
    print(f"transfers     {sched.num_transfers} in {sched.num_steps} steps")
    print(f"synthesis     {result.synthesis_s:.3f} s")
    if args.output:
        print(f"written       {record['output']}")
    return 0
