"""``trainsim presets``: the built-in models, devices, clusters and topology spec kinds.

Every figure is read from the preset objects themselves (``models.MODEL_PRESETS``,
``models.DEVICE_PRESETS``, ``engine.CLUSTER_PRESETS``, ``topology.SPEC_KINDS``), so the table a
user reads is what ``--model``, ``--device``, ``--cluster`` and ``--topology`` will use.
"""

from __future__ import annotations

import argparse
import json
import textwrap
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["KINDS", "preset_records", "register"]

#: The sections ``trainsim presets`` prints, in order; one may be named to print it alone.
KINDS: tuple[str, ...] = ("models", "devices", "clusters", "topologies")


def register(sub: Any) -> None:
    """Add the ``presets`` subcommand."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "presets",
        help="list the model, device and cluster presets and the topology spec kinds",
        description="List the built-in models (--model), devices (--device), clusters "
        "(--cluster) and the kinds of a topology spec (--topology) with their key figures.",
    )
    parser.add_argument(
        "kind", nargs="?", choices=KINDS, help="show one kind only (default: all of them)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=_run)


def _model_records() -> list[dict[str, Any]]:
    """Key figures of every model preset."""
    from trainsim.models import MODEL_PRESETS

    return [
        {
            "name": name,
            "params": spec.num_params,
            "active_params": spec.num_active_params,
            "num_layers": spec.num_layers,
            "hidden_size": spec.hidden_size,
            "num_heads": spec.num_heads,
            "num_kv_heads": spec.kv_heads,
            "seq_len": spec.seq_len,
            "vocab_size": spec.vocab_size,
            "num_experts": spec.num_experts,
            "top_k": spec.top_k,
            "num_shared_experts": spec.num_shared_experts,
        }
        for name, spec in MODEL_PRESETS.items()
    ]


def _default_clusters() -> dict[str, str | None]:
    """Each device preset's default cluster, or None where it has none."""
    from trainsim.engine import SystemConfigError, default_cluster
    from trainsim.models import DEVICE_PRESETS

    clusters: dict[str, str | None] = {}
    for name in DEVICE_PRESETS:
        try:
            clusters[name] = default_cluster(name)
        except SystemConfigError:
            clusters[name] = None
    return clusters


def _device_records() -> list[dict[str, Any]]:
    """Key figures of every device preset."""
    from trainsim.models import DEVICE_PRESETS

    clusters = _default_clusters()
    return [
        {
            "name": name,
            "peak_bf16_tflops": spec.peak_tflops.get("bf16"),
            "peak_fp8_tflops": spec.peak_tflops.get("fp8"),
            "peak_tflops": dict(spec.peak_tflops),
            "memory_gib": spec.memory_gib,
            "hbm_bandwidth_gbps": spec.hbm_bandwidth_gbps,
            "num_sms": spec.num_sms,
            "default_cluster": clusters[name],
        }
        for name, spec in DEVICE_PRESETS.items()
    ]


def _cluster_records() -> list[dict[str, Any]]:
    """Key figures of every cluster preset, with the devices it is the default cluster of."""
    from trainsim.engine import CLUSTER_PRESETS

    clusters = _default_clusters()
    return [
        {
            "name": name,
            "default_for_devices": [d for d, c in clusters.items() if c == name],
            "gpus_per_node": preset.gpus_per_node,
            "scale_up_kind": preset.intra_kind.value,
            "scale_up_bandwidth_gbps": preset.intra_bandwidth_gbps,
            "scale_up_latency_us": preset.intra_latency_us,
            # The preset builds its scale-out dimension itself: read its kind off two nodes.
            "scale_out_kind": preset.topology(2 * preset.gpus_per_node).dims[1].kind.value,
            "scale_out_bandwidth_gbps": preset.scale_out_bandwidth_gbps,
            "scale_out_latency_us": preset.scale_out_latency_us,
            "nccl": None if preset.nccl is None else preset.nccl.model_dump(),
        }
        for name, preset in CLUSTER_PRESETS.items()
    ]


def _topology_records() -> dict[str, Any]:
    """The spec grammar: its kinds, defaults and one-paragraph help, from the parser itself."""
    from trainsim.topology import SPEC_KINDS, parse_spec, spec_help

    # The defaults are what the parser gives an item that states neither figure.
    bare = next(iter(parse_spec("ring:2").links()))
    return {
        "grammar": spec_help(),
        "default_bandwidth_gbps": bare.bandwidth_gbps,
        "default_latency_us": bare.latency_us,
        "kinds": [
            {
                "kind": k.kind,
                "form": k.form,
                "example": k.example,
                "dimension": k.dimension,
                "builds": k.builds,
                "aliases": list(k.aliases),
            }
            for k in SPEC_KINDS
        ],
    }


_RECORDS: dict[str, Callable[[], Any]] = {
    "models": _model_records,
    "devices": _device_records,
    "clusters": _cluster_records,
    "topologies": _topology_records,
}


def preset_records(kinds: Sequence[str] = KINDS) -> dict[str, Any]:
    """The JSON form of ``trainsim presets``: one entry per kind asked for."""
    unknown = [k for k in kinds if k not in _RECORDS]
    if unknown:
        raise ValueError(f"presets kind {unknown[0]!r} is unknown (allowed: {', '.join(KINDS)})")
    return {kind: _RECORDS[kind]() for kind in kinds}


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], align: str) -> list[str]:
    """Aligned columns, ``align`` one letter a column: ``l`` for names, ``r`` for figures."""
    if len(align) != len(headers):
        raise ValueError(f"align {align!r} has {len(align)} letters for {len(headers)} columns")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        parts = [
            c.ljust(w) if a == "l" else c.rjust(w)
            for c, w, a in zip(cells, widths, align, strict=True)
        ]
        return "  ".join(parts).rstrip()

    return [line(headers), *(line(r) for r in rows)]


def _count(n: int) -> str:
    """A parameter count as papers write it: ``1.7B``, ``671B``, ``1.01T``."""
    for suffix, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6)):
        if n >= scale:
            return f"{n / scale:.3g}{suffix}"
    return str(n)


def _figure(value: float | None) -> str:
    """A figure without trailing zeros, ``-`` where the preset has none."""
    return "-" if value is None else f"{value:g}"


def _models_text(records: list[dict[str, Any]]) -> list[str]:
    headers = ("model", "params", "active", "layers", "hidden", "heads", "kv", "seq", "experts")
    rows = [
        (
            r["name"],
            _count(r["params"]),
            _count(r["active_params"]),
            str(r["num_layers"]),
            str(r["hidden_size"]),
            str(r["num_heads"]),
            str(r["num_kv_heads"]),
            str(r["seq_len"]),
            # routed experts, top-k per token, plus always-active shared experts
            f"{r['num_experts']} top-{r['top_k']}"
            + (f" +{r['num_shared_experts']}" if r["num_shared_experts"] else "")
            if r["num_experts"]
            else "-",
        )
        for r in records
    ]
    title = "models (--model): weights, weights active per token, MoE routed experts +shared"
    return [title, *_table(headers, rows, "lrrrrrrrl")]


def _devices_text(records: list[dict[str, Any]]) -> list[str]:
    headers = ("device", "bf16 TFLOP/s", "fp8 TFLOP/s", "HBM GiB", "HBM TB/s", "SMs", "cluster")
    rows = [
        (
            r["name"],
            _figure(r["peak_bf16_tflops"]),
            _figure(r["peak_fp8_tflops"]),
            _figure(r["memory_gib"]),
            _figure(r["hbm_bandwidth_gbps"] / 1000.0),
            _figure(r["num_sms"]),
            r["default_cluster"] or "-",
        )
        for r in records
    ]
    title = "devices (--device): dense peak rates, HBM capacity and bandwidth, default cluster"
    return [title, *_table(headers, rows, "lrrrrrl")]


def _clusters_text(records: list[dict[str, Any]]) -> list[str]:
    headers = (
        "cluster",
        "devices",
        "GPUs/node",
        "scale-up",
        "GB/s",
        "us",
        "scale-out",
        "GB/s",
        "us",
    )
    rows = [
        (
            r["name"],
            ",".join(r["default_for_devices"]) or "-",
            str(r["gpus_per_node"]),
            r["scale_up_kind"],
            _figure(r["scale_up_bandwidth_gbps"]),
            _figure(r["scale_up_latency_us"]),
            r["scale_out_kind"],
            _figure(r["scale_out_bandwidth_gbps"]),
            _figure(r["scale_out_latency_us"]),
        )
        for r in records
    ]
    own = [r["name"] for r in records if r["nccl"] is not None]
    title = (
        "clusters (--cluster): bandwidth per GPU and direction, latency per hop; devices: "
        "the device presets it is the default cluster of"
    )
    lines = [title, *_table(headers, rows, "llrlrrlrr")]
    if own:
        lines.append(f"own NCCL figures: {', '.join(own)}; the others use NCCL's defaults")
    return lines


def _topologies_text(record: dict[str, Any]) -> list[str]:
    headers = ("kind", "form", "example", "combines", "builds")
    rows = [
        (
            k["kind"] + (f" ({', '.join(k['aliases'])})" if k["aliases"] else ""),
            k["form"],
            k["example"],
            "yes" if k["dimension"] else "no",
            k["builds"],
        )
        for k in record["kinds"]
    ]
    return [
        "topologies (--topology SPEC): kinds that combine are dimensions, joined by commas",
        *_table(headers, rows, "lllll"),
        *textwrap.wrap(record["grammar"], width=100),
    ]


_TEXT: dict[str, Callable[[Any], list[str]]] = {
    "models": _models_text,
    "devices": _devices_text,
    "clusters": _clusters_text,
    "topologies": _topologies_text,
}


def _run(args: argparse.Namespace) -> int:
    kinds = KINDS if args.kind is None else (args.kind,)
    records = preset_records(kinds)
    if args.json:
        print(json.dumps(records))
        return 0
    sections = ["\n".join(_TEXT[kind](records[kind])) for kind in kinds]
    print("\n\n".join(sections))
    return 0
