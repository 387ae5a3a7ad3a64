"""Recording a device's GEMM and attention rates with PyTorch, for a measured ``DeviceSpec``.

``measure_gemm`` times ``torch.nn.functional.linear`` (``x @ w.T``, the forward of a linear
layer) on every (m, n, k) of a grid and returns a ``GemmMeasurement``; ``measure_attention``
times causal ``scaled_dot_product_attention`` (whatever fused backend PyTorch picks on the
device) forward and backward on a (sequence length, head dim) grid; ``measured_device`` puts
them into a copy of a preset. Each shape runs ``warmup`` times, then ``trials`` timings of
``repeats`` back-to-back calls of which the median counts: on a GPU the calls are captured
in a CUDA graph and timed with CUDA events as it replays, so the rate is the kernels' and not
the host's launch overhead (elsewhere: wall clock). Operands are random normal values
(zeros run faster on some GPUs and would overstate the rate).

PyTorch is the ``torch`` extra; it is imported only when a measurement runs.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from models._device import DeviceSpec, EfficiencyModel, device_preset
from models._errors import ModelsError
from models._measured import AttentionMeasurement, AttentionPoint, GemmMeasurement, GemmPoint

__all__ = [
    "DEFAULT_ATTENTION_HEAD_DIMS",
    "DEFAULT_ATTENTION_SEQ_LENS",
    "DEFAULT_GEMM_DIMS",
    "measure_attention",
    "measure_gemm",
    "measured_device",
]

#: Grid of every dimension: the token counts and hidden sizes of transformer training.
DEFAULT_GEMM_DIMS: tuple[int, ...] = (256, 512, 1024, 2048, 4096, 8192, 16384)
#: Sequence lengths and head dimensions of the attention grid.
DEFAULT_ATTENTION_SEQ_LENS: tuple[int, ...] = (512, 1024, 2048, 4096, 8192, 16384, 32768)
DEFAULT_ATTENTION_HEAD_DIMS: tuple[int, ...] = (64, 128, 256)

_TORCH_DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32", "tf32": "float32"}


def measure_gemm(
    dims: Sequence[int] = DEFAULT_GEMM_DIMS,
    *,
    dtype: str = "bf16",
    device: str = "cuda",
    warmup: int = 3,
    repeats: int = 10,
    trials: int = 3,
    progress: Callable[[str], None] | None = None,
) -> GemmMeasurement:
    """Time an (m x k) @ (k x n) product for every m, n, k in ``dims``; TFLOP/s per shape."""
    torch, target, elem = _setup(dtype, device, dims, warmup, repeats, trials)
    cuda = target.type == "cuda"
    linear = torch.nn.functional.linear
    grid = sorted(set(dims))
    eager: list[str] = []
    points: list[GemmPoint] = []
    for m in grid:
        for n in grid:
            for k in grid:
                x = torch.randn(m, k, dtype=elem, device=target)
                w = torch.randn(n, k, dtype=elem, device=target)
                seconds = _median_seconds(
                    torch, partial(linear, x, w), cuda, warmup, repeats, trials, eager
                )
                tflops = 2.0 * m * n * k / seconds / 1e12
                points.append((m, n, k, tflops))
                if progress is not None:
                    progress(f"{m}x{n}x{k} {dtype}: {tflops:.1f} TFLOP/s")
    source = (
        f"torch {torch.__version__} on {_device_name(torch, target)}: F.linear, random normal "
        f"operands, {_timing_note(trials, repeats, warmup, cuda, eager)}"
    )
    return GemmMeasurement.model_validate({"dtype": dtype, "points": points, "source": source})


def measure_attention(
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
    progress: Callable[[str], None] | None = None,
) -> AttentionMeasurement:
    """Time causal ``scaled_dot_product_attention`` forward and backward on every
    (sequence length, head dim); executed TFLOP/s of each (half of ``4 s^2 d`` per head and
    sequence forward, 2.5 times that backward). ``heads`` heads; ``tokens // seq_len``
    sequences (at least one) per call, about what one GPU's micro-batch holds."""
    torch, target, elem = _setup(dtype, device, [*seq_lens, *head_dims], warmup, repeats, trials)
    if heads < 1 or tokens < 1:
        raise ModelsError(f"heads={heads} and tokens={tokens} must be positive")
    cuda = target.type == "cuda"
    sdpa = torch.nn.functional.scaled_dot_product_attention
    eager: list[str] = []
    points: list[AttentionPoint] = []
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
            fwd_s = _median_seconds(torch, forward, cuda, warmup, repeats, trials, eager)
            bwd_s = _median_seconds(torch, backward, cuda, warmup, repeats, trials, eager)
            fwd_flops = 4.0 * batch * heads * seq * seq * dim / 2
            point = (seq, dim, fwd_flops / fwd_s / 1e12, 2.5 * fwd_flops / bwd_s / 1e12)
            points.append(point)
            if progress is not None:
                progress(
                    f"attention s={seq} d={dim} {dtype}: {point[2]:.1f} / {point[3]:.1f} TFLOP/s"
                )
    source = (
        f"torch {torch.__version__} on {_device_name(torch, target)}: causal "
        f"scaled_dot_product_attention, {heads} heads, {tokens} tokens per call, random normal "
        f"operands, {_timing_note(trials, repeats, warmup, cuda, eager)}"
    )
    return AttentionMeasurement.model_validate({"dtype": dtype, "points": points, "source": source})


def measured_device(
    base: str | DeviceSpec, *tables: GemmMeasurement | AttentionMeasurement
) -> DeviceSpec:
    """A copy of ``base`` whose GEMMs and fused attention cost the measured rates; a table
    replaces one of the same kind and dtype that ``base`` already has."""
    spec = device_preset(base) if isinstance(base, str) else base
    fields: dict[str, object] = spec.efficiency.model_dump()
    for field, kind, old in (
        ("gemm_measured", GemmMeasurement, spec.efficiency.gemm_measured),
        ("attention_measured", AttentionMeasurement, spec.efficiency.attention_measured),
    ):
        new = [t for t in tables if isinstance(t, kind)]
        kept = [t for t in old if t.dtype not in {n.dtype for n in new}]
        fields[field] = [t.model_dump() for t in (*kept, *new)]
    # Validated afresh: at most one table per kind and dtype.
    return spec.model_copy(update={"efficiency": EfficiencyModel.model_validate(fields)})


def _median_seconds(
    torch: Any,
    run: Callable[[], object],
    cuda: bool,
    warmup: int,
    repeats: int,
    trials: int,
    eager: list[str],
) -> float:
    """Median seconds of one ``run()`` over ``trials`` timings of ``repeats`` back to back.

    On a GPU the ``repeats`` calls are captured in a CUDA graph and replayed, so that the
    timing sees the kernels and not the host's launch overhead (which can exceed a small
    GEMM's time); where capture fails they run eagerly and ``eager`` records it.
    """
    for _ in range(warmup):
        run()
    replay = _graphed(torch, run, repeats) if cuda else None
    if cuda and replay is None:
        eager.append("x")
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
    return max(statistics.median(samples), 1e-9)


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


def _timing_note(trials: int, repeats: int, warmup: int, cuda: bool, eager: list[str]) -> str:
    """How the rates were timed, for a table's ``source``."""
    how = f"median of {trials} timings of {repeats} back-to-back calls after {warmup} warm-up"
    if not cuda:
        return how + " (wall clock)"
    how += ", replayed as CUDA graphs"
    return how + (f" ({len(eager)} shapes eagerly: capture failed)" if eager else "")


def _setup(
    dtype: str, device: str, sizes: Sequence[int], warmup: int, repeats: int, trials: int
) -> tuple[Any, Any, Any]:
    """PyTorch, the target device and element type, after checking the arguments."""
    if dtype not in _TORCH_DTYPES:
        raise ModelsError(f"dtype={dtype!r} cannot be measured (known: {', '.join(_TORCH_DTYPES)})")
    if not sizes or min(sizes) < 1:
        raise ModelsError(f"sizes {list(sizes)!r} must be positive")
    if warmup < 0 or repeats < 1 or trials < 1:
        raise ModelsError("warmup must be >= 0 and repeats, trials >= 1")
    torch = _import_torch()
    target = torch.device(device)
    if target.type == "cuda" and not torch.cuda.is_available():
        raise ModelsError(f"device={device!r}: PyTorch sees no CUDA device here")
    torch.backends.cuda.matmul.allow_tf32 = dtype == "tf32"
    return torch, target, getattr(torch, _TORCH_DTYPES[dtype])


def _device_name(torch: Any, target: Any) -> str:
    return str(torch.cuda.get_device_name(target)) if target.type == "cuda" else "cpu"


def _import_torch() -> Any:
    try:
        import torch
    except ImportError:
        raise ModelsError(
            "measuring a device needs PyTorch: pip install 'trainsim[torch]'"
        ) from None
    return torch
