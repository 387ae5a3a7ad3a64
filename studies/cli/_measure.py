"""``trainsim measure-device``: record this machine's GEMM and attention rates in a device file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from trainsim.models import (
    AttentionMeasurement,
    GemmMeasurement,
    ModelsError,
    device_preset,
    measured_device,
    tables_from_raw,
)
from trainsim.models.record import add_recording_flags, recording_from_args

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add the ``measure-device`` subcommand."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "measure-device",
        help="time GEMMs and attention on this machine's GPU (PyTorch); write a device file",
    )
    parser.add_argument("--base", required=True, help="device preset the GPU is (e.g. h100-sxm)")
    parser.add_argument("--out", required=True, help="device file to write (JSON)")
    parser.add_argument(
        "--from-raw",
        metavar="FILE",
        help="use tables recorded elsewhere by 'python models/record.py' instead of measuring",
    )
    add_recording_flags(parser)
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    base = device_preset(args.base)
    out = Path(args.out)
    if not out.parent.is_dir():
        raise FileNotFoundError(f"--out {out}: no directory {out.parent}")
    if args.from_raw:
        raw = json.loads(Path(args.from_raw).read_text())
        if not isinstance(raw, dict):
            raise ModelsError(f"--from-raw {args.from_raw}: not a recording (a JSON object)")
        tables = tables_from_raw(raw)
    else:
        # A RecordError is a ValueError: the command line prints it in one line.
        tables = tables_from_raw(recording_from_args(args))
    spec = measured_device(base, *tables)
    out.write_text(spec.model_dump_json(indent=1) + "\n")
    for table in tables:
        print(f"{base.name}: {_summary(table, base.peak_flops(table.dtype) / 1e12)} -> {out}")
    return 0


def _summary(table: GemmMeasurement | AttentionMeasurement, peak_tflops: float) -> str:
    """One line: how many shapes, and the largest one's rate."""
    if isinstance(table, GemmMeasurement):
        top = max(table.axes[0]), max(table.axes[1]), max(table.axes[2])
        rate = table.tflops(*top)
        shape = "x".join(str(d) for d in top)
        return (
            f"{len(table.points)} {table.dtype} GEMMs, {shape} at {rate:.4g} TFLOP/s "
            f"({rate / peak_tflops:.0%} of peak)"
        )
    seq, dim = max(p[0] for p in table.points), max(p[1] for p in table.points)
    fwd, bwd = table.tflops(seq, dim), table.tflops(seq, dim, backward=True)
    return (
        f"{len(table.points)} {table.dtype} attention shapes, s={seq} d={dim} at "
        f"{fwd:.4g} / {bwd:.4g} TFLOP/s forward / backward"
    )
