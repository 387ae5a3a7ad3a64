"""``trainsim collective``: time one collective on a network, as ASTRA-sim users would ask."""

from __future__ import annotations

import argparse
import json
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trainsim.topology import Topology

__all__ = ["parse_size", "register"]

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
    "k": 2**10,
    "m": 2**20,
    "g": 2**30,
}


def parse_size(text: str) -> int:
    """Bytes from ``1048576``, ``64MiB``, ``1GiB``, ``1.5GB`` (KiB/MiB/GiB are powers of two)."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(text))
    if match is None or match[2].lower() not in _UNITS:
        raise ValueError(f"--size {text!r}: expected a byte count like 1048576, 64MiB or 1GiB")
    value = float(match[1]) * _UNITS[match[2].lower()]
    if value < 0:
        raise ValueError(f"--size {text!r} must be >= 0")
    return int(value)


def _parse_ranks(text: str | None, num_npus: int) -> list[int]:
    if text is None:
        return list(range(num_npus))
    ranks: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            lo, _, hi = part.partition("-")
            if not (lo.isdigit() and hi.isdigit()):
                raise ValueError(f"--ranks: bad range {part!r} (expected A-B)")
            ranks.extend(range(int(lo), int(hi) + 1))
        elif part.isdigit():
            ranks.append(int(part))
        else:
            raise ValueError(f"--ranks: bad rank {part!r}")
    return ranks


def register(sub: Any) -> None:
    """Add the ``collective`` subcommand."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "collective",
        help="predict the time of one collective on a network (ASTRA-sim files accepted)",
        description="Predict the time, algorithm bandwidth and bus bandwidth of one collective.",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--network", metavar="NET.yml", help="ASTRA-sim network YAML")
    where.add_argument("--topology", metavar="SPEC", help="spec string, e.g. ring:4,switch:4")
    where.add_argument("--edge-list", metavar="FILE", help="edge list: src dst GiBps latency_us")
    parser.add_argument("--system", metavar="SYS.json", help="ASTRA-sim system JSON")
    parser.add_argument("--op", default="all_reduce", help="collective (default all_reduce)")
    parser.add_argument("--size", default="1GiB", help="per-rank buffer, e.g. 64MiB (default 1GiB)")
    parser.add_argument(
        "--algo",
        "--algorithm",
        dest="algo",
        default=None,
        help="algorithm, or one per dimension comma-separated (default: system file, else ring)",
    )
    parser.add_argument("--ranks", default=None, help="rank group, e.g. 0-7 or 0,4,8,12 (all)")
    parser.add_argument(
        "--model",
        default=None,
        choices=["analytical", "congestion", "nccl"],
        help="cost model (default analytical)",
    )
    parser.add_argument("--congestion", action="store_true", help="same as --model congestion")
    parser.add_argument("--compare", action="store_true", help="every algorithm side by side")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=_run)


def topology_from_flags(
    network: str | None, edge_list: str | None, spec: str | None, *, usage: str
) -> Topology:
    """The topology named by ASTRA-sim network YAML, a TACOS edge list or a spec string.

    The first given, in that order, wins; none given raises ``ValueError(usage)``.
    """
    from trainsim.topology import parse_spec, read_astra_network, read_edge_list

    if network:
        return read_astra_network(network)
    if edge_list:
        return read_edge_list(edge_list)
    if spec:
        return parse_spec(spec)
    raise ValueError(usage)


def _run(args: argparse.Namespace) -> int:
    from trainsim.collectives import (
        ALGORITHMS,
        CollectiveError,
        SystemConfig,
        collective_cost,
        read_astra_system,
    )

    topo = topology_from_flags(
        args.network,
        args.edge_list,
        args.topology,
        usage="give the network: --network NET.yml, --topology SPEC or --edge-list",
    )
    system = read_astra_system(args.system) if args.system else SystemConfig()
    model = "congestion" if args.congestion else (args.model or "analytical")
    size = parse_size(args.size)
    ranks = _parse_ranks(args.ranks, topo.num_npus)
    algo = None if args.algo is None else [a for a in args.algo.split(",") if a.strip()]
    if args.compare:
        rows: list[dict[str, Any]] = []
        for name in ALGORITHMS:
            try:
                cost = collective_cost(args.op, size, ranks, topo, name, model, system)
            except CollectiveError as exc:
                rows.append({"algorithm": name, "error": str(exc)})
                continue
            rows.append(cost.to_dict())
        ok = [r for r in rows if "time_ns" in r]
        best = min(ok, key=lambda r: float(r["time_ns"])) if ok else None
        if args.json:
            print(
                json.dumps(
                    {
                        "network": topo.name,
                        "op": args.op,
                        "size_bytes": size,
                        "model": model,
                        "time_ns": best["time_ns"] if best else None,
                        "best_algorithm": best["algorithm"] if best else None,
                        "results": rows,
                    }
                )
            )
        else:
            print(f"{args.op} of {size} B on {topo.name} ({len(ranks)} ranks, {model} model)")
            print(f"{'algorithm':<22}{'time_us':>14}{'algbw_GB/s':>14}{'busbw_GB/s':>14}")
            for r in rows:
                if "error" in r:
                    print(f"{r['algorithm']:<22}  n/a: {r['error']}")
                else:
                    print(
                        f"{r['algorithm']:<22}{r['time_us']:>14.3f}{r['algbw_gbps']:>14.2f}"
                        f"{r['busbw_gbps']:>14.2f}"
                    )
        return 0
    cost = collective_cost(args.op, size, ranks, topo, algo, model, system)
    if args.json:
        record = cost.to_dict()
        record["network"] = topo.name
        print(json.dumps(record))
    else:
        print(
            f"{cost.op.value} of {size} B on {topo.name}: {len(ranks)} ranks, "
            f"algorithm {cost.algorithm}, {model} model"
        )
        print(f"time          {cost.time_us:.3f} us  ({cost.time_ns:.0f} ns)")
        print(f"algbw         {cost.algbw_gbps:.2f} GB/s")
        print(f"busbw         {cost.busbw_gbps:.2f} GB/s")
    return 0
