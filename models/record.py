"""Recording a GPU's GEMM and attention rates with PyTorch alone (no other dependency).

This module needs only PyTorch and the standard library, so that it runs as a script on a GPU
machine where the rest of the package's dependencies are not installed::

    python models/record.py --out raw.json [--dims 256,...,16384] [--dtype bf16]

It writes the measured tables as JSON (``gemm_measured`` and ``attention_measured``, the
fields of ``models.EfficiencyModel``); ``trainsim measure-device --from-raw raw.json --base
h100-sxm --out h100.json`` turns them into a device file. ``models.measure_gemm`` and
``models.measure_attention`` call the same functions in process.

``record_gemm`` times ``torch.nn.functional.linear`` (``x @ w.T``, the forward of a linear
layer) on every (m, n, k) of a grid; ``record_attention`` times causal
``scaled_dot_product_attention`` (whatever fused backend PyTorch picks on the device) forward
and backward on a (sequence length, head dim) grid. Each shape runs ``warmup`` times, then
``trials`` timings of ``repeats`` back-to-back calls of which the median counts: on a GPU the
calls are captured in a CUDA graph and timed with CUDA events as it replays, so the rate is
the kernels' and not the host's launch overhead (elsewhere: wall clock). Operands are random
normal values (zeros run faster on some GPUs and would overstate the rate).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_ATTENTION_HEAD_DIMS",
    "DEFAULT_ATTENTION_SEQ_LENS",
    "DEFAULT_GEMM_DIMS",
    "RecordError",
    "add_recording_flags",
    "main",
    "record_attention",
    "record_gemm",
    "record_tables",
    "recording_from_args",
]

#: Grid of every dimension: the token counts and hidden sizes of transformer training.
DEFAULT_GEMM_DIMS: tuple[int, ...] = (256, 512, 1024, 2048, 4096, 8192, 16384)
#: Sequence lengths and head dimensions of the attention grid.
DEFAULT_ATTENTION_SEQ_LENS: tuple[int, ...] = (512, 1024, 2048, 4096, 8192, 16384, 32768)
DEFAULT_ATTENTION_HEAD_DIMS: tuple[int, ...] = (64, 128, 256)

_TORCH_DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32", "tf32": "float32"}

Progress = Callable[[str], None] | None
TableSink = Callable[[dict[str, list[dict[str, Any]]]], None] | None


class RecordError(ValueError):
    """Arguments a measurement cannot run with (dtype, sizes, counts, no GPU, no PyTorch)."""


def record_gemm(
    dims: Sequence[int] = DEFAULT_GEMM_DIMS,
    *,
    dtype: str = "bf16",
    device: str = "cuda",
    warmup: int = 3,
    repeats: int = 10,
    trials: int = 3,
    progress: Progress = None,
) -> dict[str, Any]:
    """TFLOP/s of an (m x k) @ (k x n) product for every m, n, k in ``dims``, as the fields
    of a ``models.GemmMeasurement`` (``dtype``, ``points``, ``source``)."""
    torch, target, elem = _setup(dtype, device, dims, warmup, repeats, trials)
    cuda = target.type == "cuda"
    linear = torch.nn.functional.linear
    grid = sorted(set(dims))
    eager = 0  # timings that ran eagerly: CUDA graph capture failed
    points: list[list[float]] = []
    for m in grid:
        for n in grid:
            for k in grid:
                x = torch.randn(m, k, dtype=elem, device=target)
                w = torch.randn(n, k, dtype=elem, device=target)
                seconds, graphed = _median_seconds(
                    torch, partial(linear, x, w), cuda, warmup, repeats, trials
                )
                eager += cuda and not graphed
                tflops = 2.0 * m * n * k / seconds / 1e12
                points.append([m, n, k, tflops])
                if progress is not None:
                    progress(f"{m}x{n}x{k} {dtype}: {tflops:.1f} TFLOP/s")
    source = (
        f"torch {torch.__version__} on {_device_name(torch, target)}: F.linear, random normal "
        f"operands, {_timing_note(trials, repeats, warmup, cuda, eager)}"
    )
    return {"dtype": dtype, "points": points, "source": source}


def record_attention(
    seq_lens: Sequence[int] = DEFAULT_ATTENTION_SEQ_LENS,
    head_dims: Sequence[int] = DEFAULT_ATTENTION_HEAD_DIMS,
    *,
    dtype: str = "bf16",
    device: str = "cuda",
    heads: int = 16,
    tokens: int = 16384,
    warmup: int = 3,
    repeats: int = 10,
    trials: int = 3,
    progress: Progress = None,
) -> dict[str, Any]:
    """Causal ``scaled_dot_product_attention`` forward and backward TFLOP/s on every
    (sequence length, head dim), as the fields of a ``models.AttentionMeasurement``.

    Rates count executed FLOPs: half of ``4 s^2 d`` per head and sequence forward (the mask
    skips the upper triangle), 2.5 times that backward. ``heads`` heads; ``tokens // seq_len``
    sequences (at least one) per call, about what one GPU's micro-batch holds.
    """
    torch, target, elem = _setup(dtype, device, [*seq_lens, *head_dims], warmup, repeats, trials)
    if heads < 1 or tokens < 1:
        raise RecordError(f"heads={heads} and tokens={tokens} must be positive")
    cuda = target.type == "cuda"
    sdpa = torch.nn.functional.scaled_dot_product_attention
    eager = 0  # timings that ran eagerly: CUDA graph capture failed
    points: list[list[float]] = []
    for seq in sorted(set(seq_lens)):
        batch = max(1, tokens // seq)
        for dim in sorted(set(head_dims)):
            q, k, v = (
                torch.randn(batch, heads, seq, dim, dtype=elem, device=target, requires_grad=True)
                for _ in range(3)
            )
            out = sdpa(q, k, v, is_causal=True)
            grad = torch.randn_like(out)
            forward = partial(sdpa, q, k, v, is_causal=True)
            backward = partial(torch.autograd.grad, out, (q, k, v), grad, retain_graph=True)
            fwd_s, fwd_graphed = _median_seconds(torch, forward, cuda, warmup, repeats, trials)
            bwd_s, bwd_graphed = _median_seconds(torch, backward, cuda, warmup, repeats, trials)
            eager += cuda and not fwd_graphed
            eager += cuda and not bwd_graphed
            fwd_flops = 4.0 * batch * heads * seq * seq * dim / 2
            fwd, bwd = fwd_flops / fwd_s / 1e12, 2.5 * fwd_flops / bwd_s / 1e12
            points.append([seq, dim, fwd, bwd])
            if progress is not None:
                progress(f"attention s={seq} d={dim} {dtype}: {fwd:.1f} / {bwd:.1f} TFLOP/s")
    source = (
        f"torch {torch.__version__} on {_device_name(torch, target)}: causal "
        f"scaled_dot_product_attention, {heads} heads, {tokens} tokens per call, random normal "
        f"operands, {_timing_note(trials, repeats, warmup, cuda, eager)}"
    )
    return {"dtype": dtype, "points": points, "source": source}


def _median_seconds(
    torch: Any,
    run: Callable[[], object],
    cuda: bool,
    warmup: int,
    repeats: int,
    trials: int,
) -> tuple[float, bool]:
    """Median seconds of one ``run()`` over ``trials`` timings of ``repeats`` back to back,
    and whether they were CUDA graph replays.

    On a GPU the ``repeats`` calls are captured in a CUDA graph and replayed, so that the
    timing sees the kernels and not the host's launch overhead (which can exceed a small
    GEMM's time); where capture fails they run eagerly.
    """
    for _ in range(warmup):
        run()
    replay = _graphed(torch, run, repeats) if cuda else None
    samples: list[float] = []
    for _ in range(trials):
        if cuda:
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            if replay is not None:
                replay()
            else:
                for _ in range(repeats):
                    run()
            stop.record()
            stop.synchronize()
            samples.append(float(start.elapsed_time(stop)) / 1e3 / repeats)
        else:
            began = time.perf_counter()
            for _ in range(repeats):
                run()
            samples.append((time.perf_counter() - began) / repeats)
    return max(statistics.median(samples), 1e-9), replay is not None


def _graphed(torch: Any, run: Callable[[], object], repeats: int) -> Callable[[], object] | None:
    """Replay of a CUDA graph of ``repeats`` calls of ``run``; None where capture fails."""
    try:
        # PyTorch's capture recipe: warm up on a side stream, then capture.
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            run()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            for _ in range(repeats):
                run()
    except RuntimeError:
        torch.cuda.synchronize()
        return None
    replay: Callable[[], object] = graph.replay
    return replay


def _timing_note(trials: int, repeats: int, warmup: int, cuda: bool, eager: int) -> str:
    """How the rates were timed, for a table's ``source``."""
    how = f"median of {trials} timings of {repeats} back-to-back calls after {warmup} warm-up"
    if not cuda:
        return how + " (wall clock)"
    how += ", replayed as CUDA graphs"
    return how + (f" ({eager} timings eagerly: capture failed)" if eager else "")


def _setup(
    dtype: str, device: str, sizes: Sequence[int], warmup: int, repeats: int, trials: int
) -> tuple[Any, Any, Any]:
    """PyTorch, the target device and element type, after checking the arguments."""
    if dtype not in _TORCH_DTYPES:
        raise RecordError(f"dtype={dtype!r} cannot be measured (known: {', '.join(_TORCH_DTYPES)})")
    if not sizes or min(sizes) < 1:
        raise RecordError(f"sizes {list(sizes)!r} must be positive")
    if warmup < 0 or repeats < 1 or trials < 1:
        raise RecordError("warmup must be >= 0 and repeats, trials >= 1")
    torch = _import_torch()
    target = torch.device(device)
    if target.type == "cuda" and not torch.cuda.is_available():
        raise RecordError(f"device={device!r}: PyTorch sees no CUDA device here")
    torch.backends.cuda.matmul.allow_tf32 = dtype == "tf32"
    return torch, target, getattr(torch, _TORCH_DTYPES[dtype])


def _device_name(torch: Any, target: Any) -> str:
    return str(torch.cuda.get_device_name(target)) if target.type == "cuda" else "cpu"


def _import_torch() -> Any:
    try:
        import torch
    except ImportError:
        raise RecordError(
            "measuring a device needs PyTorch: pip install 'trainsim[torch]'"
        ) from None
    return torch


def _sizes(flag: str, text: str) -> list[int]:
    try:
        return [int(d) for d in text.split(",") if d.strip()]
    except ValueError:
        raise RecordError(f"{flag} {text!r}: expected comma-separated integers") from None


def add_recording_flags(parser: argparse.ArgumentParser) -> None:
    """The flags that choose what to record and how to time it (``recording_from_args``)."""

    def sizes(values: Sequence[int]) -> str:
        return ",".join(str(v) for v in values)

    parser.add_argument("--dims", default=sizes(DEFAULT_GEMM_DIMS), help="GEMM m, n and k grid")
    parser.add_argument(
        "--seq-lens", default=sizes(DEFAULT_ATTENTION_SEQ_LENS), help="attention sequences"
    )
    parser.add_argument(
        "--head-dims", default=sizes(DEFAULT_ATTENTION_HEAD_DIMS), help="attention head dims"
    )
    parser.add_argument("--no-attention", action="store_true", help="GEMMs only")
    parser.add_argument(
        "--dtype", action="append", choices=sorted(_TORCH_DTYPES), help="repeatable (bf16)"
    )
    parser.add_argument("--torch-device", default="cuda", help="PyTorch device (default cuda)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10, help="calls per timing")
    parser.add_argument("--trials", type=int, default=3, help="timings per shape (median)")
    parser.add_argument("--quiet", action="store_true", help="no line per shape")


def recording_from_args(
    args: argparse.Namespace, *, on_table: TableSink = None
) -> dict[str, list[dict[str, Any]]]:
    """Record what ``add_recording_flags``' flags ask for."""
    return record_tables(
        _sizes("--dims", args.dims),
        _sizes("--seq-lens", args.seq_lens),
        _sizes("--head-dims", args.head_dims),
        dtypes=args.dtype or ["bf16"],
        attention=not args.no_attention,
        device=args.torch_device,
        warmup=args.warmup,
        repeats=args.repeats,
        trials=args.trials,
        progress=None if args.quiet else _to_stderr,
        on_table=on_table,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Record the tables and write them as JSON; one line on stderr and status 2 on bad input."""
    parser = argparse.ArgumentParser(
        prog="python models/record.py", description=__doc__.splitlines()[0] if __doc__ else ""
    )
    parser.add_argument("--out", required=True, help="JSON file for the recorded tables")
    add_recording_flags(parser)
    args = parser.parse_args(argv)
    out = Path(args.out)

    def save(tables: dict[str, list[dict[str, Any]]]) -> None:
        # Written after every table: a later failure (a shape the GPU's attention kernels
        # refuse, a lost machine) keeps what was recorded.
        out.write_text(json.dumps(tables, indent=1) + "\n")

    try:
        recording_from_args(args, on_table=save)
    except (RecordError, OSError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"record: error: {first}", file=sys.stderr)
        return 2
    print(f"wrote {out}", file=sys.stderr)
    return 0


def record_tables(
    dims: Sequence[int],
    seq_lens: Sequence[int],
    head_dims: Sequence[int],
    *,
    dtypes: Sequence[str] = ("bf16",),
    attention: bool = True,
    device: str = "cuda",
    warmup: int = 3,
    repeats: int = 10,
    trials: int = 3,
    progress: Progress = None,
    on_table: TableSink = None,
) -> dict[str, list[dict[str, Any]]]:
    """Every table for ``dtypes``, keyed like ``models.EfficiencyModel``'s fields (no
    attention table for tf32, which fused attention does not run in); ``on_table`` sees the
    tables recorded so far after each one."""
    timing: dict[str, Any] = {
        "device": device,
        "warmup": warmup,
        "repeats": repeats,
        "trials": trials,
        "progress": progress,
    }
    tables: dict[str, list[dict[str, Any]]] = {"gemm_measured": [], "attention_measured": []}
    for dtype in dtypes:
        tables["gemm_measured"].append(record_gemm(dims, dtype=dtype, **timing))
        if on_table is not None:
            on_table(tables)
    for dtype in dtypes:
        if attention and dtype != "tf32":
            tables["attention_measured"].append(
                record_attention(seq_lens, head_dims, dtype=dtype, **timing)
            )
            if on_table is not None:
                on_table(tables)
    return tables


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
