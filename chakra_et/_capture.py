"""``capture``: record a PyTorch host execution trace and Kineto trace around a user's loop.

torch is imported only here, when ``capture`` is entered; the rest of ``chakra_et`` never
needs it.

>>> from trainsim import chakra_et
>>> with chakra_et.capture("traces", warmup_steps=1) as cap:  # doctest: +SKIP
...     for _ in range(2):
...         train_step()
...         cap.step()
>>> cap.conversion.report.format()  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from trainsim.chakra_et.convert import Conversion, TraceConversionError, convert_pytorch

__all__ = ["CaptureError", "CaptureSession", "capture"]


class CaptureError(TraceConversionError):
    """Recording could not start (no torch, bad arguments) or wrote no trace."""


class CaptureSession:
    """A running capture: call ``step()`` after each training step; files and results after."""

    def __init__(self, host_path: Path, kineto_path: Path, et_path: Path | None) -> None:
        self.host_path = host_path
        self.kineto_path = kineto_path
        self.et_path = et_path
        self.conversion: Conversion | None = None
        self._profiler: Any = None

    def step(self) -> None:
        """Mark the end of one training step (drives the warm-up/active schedule)."""
        if self._profiler is not None:
            self._profiler.step()


def _rank_of(torch: Any) -> int:
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return int(dist.get_rank())
    return 0


@contextmanager
def capture(
    out_dir: str | os.PathLike[str],
    *,
    warmup_steps: int = 0,
    rank: int | None = None,
    convert: bool = True,
    name: str = "et",
    record_cuda: bool | None = None,
) -> Iterator[CaptureSession]:
    """Record ``host.R.json`` (ExecutionTraceObserver) and ``device.R.json`` (Kineto).

    With ``warmup_steps`` > 0 the first steps (ended by ``session.step()``) are skipped and
    the next one is recorded, so caches and allocators are warm; with 0 the whole block is
    recorded. On a clean exit with ``convert`` the traces become ``OUT_DIR/NAME.R.et`` and
    ``session.conversion`` holds the graph and report. ``record_cuda`` defaults to whether
    CUDA is available. The rank defaults to ``torch.distributed``'s.
    """
    if warmup_steps < 0:
        raise CaptureError(f"capture: warmup_steps must be >= 0, got {warmup_steps}")
    try:
        import torch
        from torch.profiler import ExecutionTraceObserver, ProfilerActivity, profile, schedule
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise CaptureError(f"capture needs torch (pip install 'trainsim[torch]'): {exc}") from None
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    own_rank = _rank_of(torch) if rank is None else rank
    session = CaptureSession(
        folder / f"host.{own_rank}.json",
        folder / f"device.{own_rank}.json",
        folder / f"{name}.{own_rank}.et" if convert else None,
    )
    activities = [ProfilerActivity.CPU]
    if record_cuda if record_cuda is not None else torch.cuda.is_available():
        activities.append(ProfilerActivity.CUDA)
    observer = ExecutionTraceObserver()
    observer.register_callback(str(session.host_path))

    def on_ready(prof: Any) -> None:
        prof.export_chrome_trace(str(session.kineto_path))

    kwargs: dict[str, Any] = {}
    if warmup_steps:
        kwargs["schedule"] = schedule(wait=0, warmup=warmup_steps, active=1, repeat=1)
    profiler = profile(
        activities=activities,
        record_shapes=True,
        on_trace_ready=on_ready,
        execution_trace_observer=observer,
        **kwargs,
    )
    session._profiler = profiler
    try:
        with profiler:
            yield session
    finally:
        session._profiler = None
        observer.stop()
        observer.unregister_callback()
    if not session.host_path.exists() or not session.kineto_path.exists():
        raise CaptureError(
            f"capture: no trace was written to {folder} (with warmup_steps={warmup_steps}, "
            "call session.step() after each step, at least warmup_steps + 1 times)"
        )
    if convert and session.et_path is not None:
        session.conversion = convert_pytorch(
            session.host_path, session.kineto_path, session.et_path, rank=own_rank
        )
