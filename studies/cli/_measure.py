"""``trainsim measure-device``: record this machine's GEMM and attention rates in a device file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from models import (
    DEFAULT_ATTENTION_HEAD_DIMS,
    DEFAULT_ATTENTION_SEQ_LENS,
    DEFAULT_GEMM_DIMS,
    AttentionMeasurement,
    GemmMeasurement,
    device_preset,
    measure_attention,
    measure_gemm,
    measured_device,
)

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
        "--dims",
        default=",".join(str(d) for d in DEFAULT_GEMM_DIMS),
        help="grid of m, n and k values (comma-separated)",
    )
    parser.add_argument(
        "--seq-lens",
        default=",".join(str(d) for d in DEFAULT_ATTENTION_SEQ_LENS),
        help="attention sequence lengths (comma-separated)",
    )
    parser.add_argument(
        "--head-dims",
        default=",".join(str(d) for d in DEFAULT_ATTENTION_HEAD_DIMS),
        help="attention head dimensions (comma-separated)",
    )
    parser.add_argument("--no-attention", action="store_true", help="measure GEMMs only")
    parser.add_argument(
        "--dtype", action="append", choices=("bf16", "fp16", "fp32", "tf32"), help="repeatable"
    )
    parser.add_argument("--torch-device", default="cuda", help="PyTorch device (default cuda)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10, help="products per timing")
    parser.add_argument("--trials", type=int, default=3, help="timings per shape (median)")
    parser.add_argument("--quiet", action="store_true", help="no line per shape")
    parser.set_defaults(func=_run)


def _sizes(flag: str, text: str) -> list[int]:
    try:
        return [int(d) for d in text.split(",") if d.strip()]
    except ValueError:
        raise ValueError(f"{flag} {text!r}: expected comma-separated integers") from None


def _run(args: argparse.Namespace) -> int:
    dims = _sizes("--dims", args.dims)
    seq_lens = _sizes("--seq-lens", args.seq_lens)
    head_dims = _sizes("--head-dims", args.head_dims)
    base = device_preset(args.base)
    out = Path(args.out)
    if not out.parent.is_dir():
        raise FileNotFoundError(f"--out {out}: no directory {out.parent}")
    progress = None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    device, warmup, repeats, trials = args.torch_device, args.warmup, args.repeats, args.trials
    tables: list[GemmMeasurement | AttentionMeasurement] = []
    for dtype in args.dtype or ["bf16"]:
        tables.append(
            measure_gemm(
                dims,
                dtype=dtype,
                device=device,
                warmup=warmup,
                repeats=repeats,
                trials=trials,
                progress=progress,
            )
        )
        if not args.no_attention and dtype != "tf32":
            tables.append(
                measure_attention(
                    seq_lens,
                    head_dims,
                    dtype=dtype,
                    device=device,
                    warmup=warmup,
                    repeats=repeats,
                    trials=trials,
                    progress=progress,
                )
            )
    spec = measured_device(base, *tables)
    out.write_text(spec.model_dump_json(indent=1) + "\n")
    for table in tables:
        print(f"{base.name}: {_summary(table, base.peak_flops(table.dtype) / 1e12)} -> {out}")
    return 0


def _summary(table: GemmMeasurement | AttentionMeasurement, peak_tflops: float) -> str:
    """One line: how many shapes, and the largest one's rate as a fraction of peak."""
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
