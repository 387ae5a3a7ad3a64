"""``trainsim synthesize``: a TACOS collective for a network file, timed and exported.

``--size`` means what it means to ``trainsim collective`` (``CollectiveSize``), and the ring
baseline printed beside the synthesized schedule is that command's answer on the same case.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trainsim.collectives import SystemConfig
    from trainsim.topology import Topology

    from ._collective import CollectiveSize

__all__ = ["register"]


class SynthesizeError(ValueError):
    """A ``synthesize`` option the user has to fix (a bad count)."""


def register(sub: Any) -> None:
    """Add the ``synthesize`` subcommand."""
    from trainsim.topology import spec_help

    from ._collective import SIZE_HELP

    parser: argparse.ArgumentParser = sub.add_parser(
        "synthesize",
        help="synthesize a collective for any topology with TACOS (MSCCL export)",
        description="Synthesize All-Gather, Reduce-Scatter or All-Reduce for a network by "
        "TACOS greedy link-chunk matching; print its time beside the ring baseline of "
        "'trainsim collective' on the same case and optionally export the schedule. --size is "
        "nccl-tests' buffer, as in 'trainsim collective'.",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--edges", metavar="FILE.txt", help="edge list: src dst GiBps latency_us")
    where.add_argument("--network", metavar="NET.yml", help="ASTRA-sim network YAML")
    where.add_argument("--topology", metavar="SPEC", help=spec_help().replace("%", "%%"))
    parser.add_argument(
        "--op", default="all_gather", help="all_gather, reduce_scatter or all_reduce"
    )
    parser.add_argument("--size", default="64MiB", help=f"{SIZE_HELP}; e.g. 64MiB (default)")
    parser.add_argument("--chunks-per-npu", type=int, default=1, help="chunks per NPU (1)")
    parser.add_argument("--trials", type=int, default=5, help="randomized trials, best kept (5)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (0)")
    parser.add_argument("--ranks", default=None, help="rank group, e.g. 0-7 or 0,4,8 (all)")
    parser.add_argument(
        "-o", "--output", metavar="FILE", help="write the schedule: .json (MSCCL-style) or .xml"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=_run)


def _ring_baseline(
    size: CollectiveSize, ranks: list[int], topo: Topology, system: SystemConfig
) -> dict[str, Any]:
    """The ring algorithm on the same case, as ``trainsim collective --algo ring`` times it.

    Both the analytical model (that command's default) and the congestion model (the one the
    synthesized schedule is also run through) are given, so the schedule has a yardstick.
    """
    from trainsim.collectives import CollectiveError, collective_cost

    try:
        times_us = {
            model: collective_cost(
                size.op, size.per_rank_bytes, ranks, topo, "ring", model, system
            ).time_us
            for model in ("analytical", "congestion")
        }
    except CollectiveError as exc:
        return {"algorithm": "ring", "error": str(exc)}
    return {
        "algorithm": "ring",
        "time_us": times_us["analytical"],
        "congestion_time_us": times_us["congestion"],
    }


def _run(args: argparse.Namespace) -> int:
    from trainsim.collectives import (
        CollectiveOp,
        SystemConfig,
        evaluate,
        routes_for,
        synthesize_tacos,
        write_msccl,
    )

    from ._collective import CollectiveSize, _parse_ranks, parse_size, topology_from_flags

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
    size = CollectiveSize(op, parse_size(args.size), len(ranks))
    result = synthesize_tacos(
        op,
        size.per_rank_bytes,
        topo,
        ranks=ranks,
        chunks_per_npu=args.chunks_per_npu,
        trials=args.trials,
        seed=args.seed,
    )
    sched = result.schedule
    nodes = int(max(topo.graph.nodes)) + 1
    system = SystemConfig()
    executed = evaluate(
        [sched], [routes_for(sched, topo)], system, congestion=True, num_nodes=nodes
    )
    baseline = _ring_baseline(size, ranks, topo, system)
    record: dict[str, Any] = {
        "network": topo.name,
        **result.to_dict(),
        **size.to_dict(),
        "congestion_time_us": executed.time_ns / 1000.0,
        "baseline": baseline,
    }
    if args.output:
        record["output"] = str(write_msccl(result, args.output))
    if args.json:
        print(json.dumps(record))
        return 0
    print(
        f"tacos {op.value} on {topo.name}: {len(ranks)} NPUs, "
        f"{args.chunks_per_npu} chunk(s)/NPU, best of {args.trials} trial(s)"
    )
    executed_us = record["congestion_time_us"]
    print(f"size          {size.describe()}")
    print(f"time          {result.time_us:.3f} us  (congestion model {executed_us:.3f} us)")
    if "error" in baseline:
        print(f"ring baseline n/a: {baseline['error']}")
    else:
        print(
            f"ring baseline {baseline['time_us']:.3f} us  (congestion model "
            f"{baseline['congestion_time_us']:.3f} us; as trainsim collective --algo ring)"
        )
    print(f"lower bound   {result.lower_bound_us:.3f} us  ({100 * result.efficiency:.1f}% of it)")
    print(f"transfers     {sched.num_transfers} in {sched.num_steps} steps")
    print(f"synthesis     {result.synthesis_s:.3f} s")
    if args.output:
        print(f"written       {record['output']}")
    return 0
