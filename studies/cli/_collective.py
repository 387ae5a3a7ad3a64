"""``trainsim collective``: time one collective on a network, as ASTRA-sim users would ask.

``--size`` means the same here and in ``trainsim synthesize`` (``CollectiveSize``): the
collective's buffer as nccl-tests reports it in its ``size`` column, the byte count its algbw
divides by the time. The library takes the per-rank buffer (ASTRA-sim's ``comm_size``,
``CollectiveOp``); ``CollectiveSize`` converts one into the other and says which is which.
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trainsim.collectives import CollectiveCost, CollectiveOp, SystemConfig
    from trainsim.topology import Topology

__all__ = ["SIZE_HELP", "CollectiveSize", "format_bytes", "parse_size", "register"]
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


#: ``--size`` of each operation: what the bytes are, and what ``size / N`` of them is, if anything.
#: The first is the buffer nccl-tests reports (``CollectiveOp.algbw_bytes``), never retyped.
_SIZE_MEANING: dict[str, tuple[str, str | None]] = {
    "all_reduce": ("all-reduce buffer on every rank", None),
    "all_gather": ("all-gather output", "input per rank"),
    "reduce_scatter": ("reduce-scatter input on every rank", "output per rank"),
    "all_to_all": ("all-to-all send buffer on every rank", "to each peer"),
    "broadcast": ("broadcast buffer", None),
    "reduce": ("reduce buffer on every rank", None),
    "gather": ("gather input per rank", None),
    "scatter": ("scatter output per rank", None),
    "barrier": ("barrier buffer", None),
    "send_recv": ("message", None),
}

#: The ``--size`` help of ``collective`` and ``synthesize``, so both say the same thing.
SIZE_HELP = (
    "the collective's buffer as nccl-tests reports it (the bytes algbw is computed from): the "
    "all-gather output (each rank gives size/N), the reduce-scatter input, the all-reduce "
    "buffer, each rank's all-to-all send buffer; other ops: each rank's buffer"
)


def format_bytes(size_bytes: float) -> str:
    """A byte count as a person reads it: ``64 MiB``, ``1.397 GiB``, ``512 B``."""
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size_bytes >= scale:
            return f"{size_bytes / scale:.3f}".rstrip("0").rstrip(".") + f" {unit}"
    return f"{size_bytes:.3f}".rstrip("0").rstrip(".") + " B"


@dataclass(frozen=True)
class CollectiveSize:
    """``--size`` as both collective commands read it: nccl-tests' buffer, and its per-rank part.

    ``buffer_bytes`` is what the user typed (all-gather output, reduce-scatter input...);
    ``per_rank_bytes`` is what the cost models and the synthesizer take (``CollectiveOp``):
    the buffer divided by ``CollectiveOp.algbw_bytes`` of one byte, so the two conventions
    cannot drift apart.
    """

    op: CollectiveOp
    buffer_bytes: int
    num_ranks: int

    def __post_init__(self) -> None:
        if self.num_ranks < 1:
            raise ValueError(f"--ranks: the group needs at least one rank, got {self.num_ranks}")

    @property
    def per_rank_bytes(self) -> float:
        """Each rank's buffer in the library's convention (all-gather: its input shard)."""
        return self.buffer_bytes / self.op.algbw_bytes(1.0, self.num_ranks)

    @property
    def meaning(self) -> str:
        """What the buffer is, e.g. ``all-gather output``."""
        return _SIZE_MEANING[self.op.value][0]

    def describe(self) -> str:
        """One phrase for text output, e.g. ``64 MiB all-gather output, 8 MiB input per rank``."""
        meaning, part = _SIZE_MEANING[self.op.value]
        text = f"{format_bytes(self.buffer_bytes)} {meaning}"
        if part is not None and self.num_ranks > 1:
            text += f", {format_bytes(self.buffer_bytes / self.num_ranks)} {part}"
        return text

    def to_dict(self) -> dict[str, object]:
        """The size fields of both commands' JSON output."""
        per_rank = self.per_rank_bytes
        return {
            "size_bytes": self.buffer_bytes,
            "size_meaning": self.meaning,
            "per_rank_bytes": int(per_rank) if per_rank.is_integer() else per_rank,
        }


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
    from trainsim.topology import spec_help

    parser: argparse.ArgumentParser = sub.add_parser(
        "collective",
        help="predict the time of one collective on a network (ASTRA-sim files accepted)",
        description="Predict the time, algorithm bandwidth and bus bandwidth of one collective. "
        "--size is nccl-tests' buffer: 64MiB all_gather is a 64 MiB output, 8 MiB from each "
        "of 8 ranks, the same case as 'trainsim synthesize' with the same flags.",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--network", metavar="NET.yml", help="ASTRA-sim network YAML")
    where.add_argument("--topology", metavar="SPEC", help=spec_help().replace("%", "%%"))
    where.add_argument("--edge-list", metavar="FILE", help="edge list: src dst GiBps latency_us")
    parser.add_argument("--system", metavar="SYS.json", help="ASTRA-sim system JSON")
    parser.add_argument("--op", default="all_reduce", help="collective (default all_reduce)")
    parser.add_argument("--size", default="1GiB", help=f"{SIZE_HELP}; e.g. 64MiB (default 1GiB)")
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
    parser.add_argument(
        "--compare",
        action="store_true",
        help="every algorithm side by side (nccl model: each protocol NCCL can choose)",
    )
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


def _cost_record(cost: CollectiveCost, size: CollectiveSize) -> dict[str, Any]:
    """A cost's JSON form with the size fields both commands share (``size_bytes`` as typed)."""
    return {**cost.to_dict(), **size.to_dict()}


def _compare(
    size: CollectiveSize,
    ranks: list[int],
    topo: Topology,
    model: str,
    system: SystemConfig,
) -> list[dict[str, Any]]:
    """One row per distinct choice: every algorithm, or under ``nccl`` every protocol.

    The NCCL model picks its own algorithm and protocol, so asking it for each of our
    algorithms gives one row many times; what it can choose between is its protocols, so each
    is timed alone (the fastest is the model's own answer). Rows that come out identical are
    shown once whatever the model.
    """
    from trainsim.collectives import ALGORITHMS, CollectiveError, NcclParams, collective_cost

    choices: list[tuple[str, str | None, SystemConfig]]
    if model == "nccl":
        params = system.nccl or NcclParams()
        choices = [
            (
                f"nccl-{proto.name}",
                None,
                system.model_copy(
                    update={"nccl": params.model_copy(update={"protocols": (proto,)})}
                ),
            )
            for proto in params.protocols
        ]
    else:
        choices = [(name, name, system) for name in ALGORITHMS]
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for label, algorithm, config in choices:
        row: dict[str, Any]
        try:
            cost = collective_cost(
                size.op, size.per_rank_bytes, ranks, topo, algorithm, model, config
            )
        except CollectiveError as exc:
            row = {"algorithm": label, "error": str(exc)}
        else:
            row = _cost_record(cost, size)
        key = json.dumps(row, sort_keys=True)
        if key not in seen:
            seen.add(key)
            rows.append(row)
    return rows


def _run(args: argparse.Namespace) -> int:
    from trainsim.collectives import (
        CollectiveOp,
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
    ranks = _parse_ranks(args.ranks, topo.num_npus)
    size = CollectiveSize(CollectiveOp.parse(args.op), parse_size(args.size), len(ranks))
    algo = None if args.algo is None else [a for a in args.algo.split(",") if a.strip()]
    if args.compare:
        rows = _compare(size, ranks, topo, model, system)
        ok = [r for r in rows if "time_ns" in r]
        best = min(ok, key=lambda r: float(r["time_ns"])) if ok else None
        if args.json:
            print(
                json.dumps(
                    {
                        "network": topo.name,
                        "op": size.op.value,
                        **size.to_dict(),
                        "model": model,
                        "time_ns": best["time_ns"] if best else None,
                        "best_algorithm": best["algorithm"] if best else None,
                        "results": rows,
                    }
                )
            )
            return 0
        print(
            f"{size.op.value} on {topo.name} ({len(ranks)} ranks, {model} model): {size.describe()}"
        )
        column = "protocol" if model == "nccl" else "algorithm"
        print(f"{column:<22}{'time_us':>14}{'algbw_GB/s':>14}{'busbw_GB/s':>14}")
        for r in rows:
            if "error" in r:
                print(f"{r['algorithm']:<22}  n/a: {r['error']}")
            else:
                print(
                    f"{r['algorithm']:<22}{r['time_us']:>14.3f}{r['algbw_gbps']:>14.2f}"
                    f"{r['busbw_gbps']:>14.2f}"
                )
        if best is not None:
            chosen = "NCCL's choice" if model == "nccl" else "fastest"
            print(f"{chosen}: {best['algorithm']} ({best['time_us']:.3f} us)")
        return 0
    cost = collective_cost(size.op, size.per_rank_bytes, ranks, topo, algo, model, system)
    if args.json:
        record = _cost_record(cost, size)
        record["network"] = topo.name
        print(json.dumps(record))
    else:
        print(
            f"{cost.op.value} on {topo.name}: {len(ranks)} ranks, "
            f"algorithm {cost.algorithm}, {model} model"
        )
        print(f"size          {size.describe()}")
        print(f"time          {cost.time_us:.3f} us  ({cost.time_ns:.0f} ns)")
        print(f"algbw         {cost.algbw_gbps:.2f} GB/s")
        print(f"busbw         {cost.busbw_gbps:.2f} GB/s")
    return 0
