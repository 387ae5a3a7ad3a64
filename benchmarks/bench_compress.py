"""Benchmark of the gradient compressors: elements per second against a plain numpy pass.

The memory-bandwidth limit is a plain numpy pass over the same float32 array (``a + b`` into
a preallocated output: two reads and one write); AdaComp and ScaleCom make several such
passes (their ``selection_passes``), so their throughput is quoted as a multiple of it.
Medians of several runs.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np

from trainsim.collectives import AdaComp, ScaleCom

SIZE = 1 << 24  # 16M elements, 64 MiB of float32: well past the caches
REPEATS = 5


def _median_s(fn: Callable[[], object], repeats: int = REPEATS) -> float:
    fn()  # warm up: page faults, allocator
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    """Print compressor throughput next to the numpy memory-bandwidth baseline."""
    rng = np.random.default_rng(0)
    grad = rng.standard_t(2, SIZE).astype(np.float32)
    other = rng.standard_t(2, SIZE).astype(np.float32)
    out = np.empty_like(grad)
    base = _median_s(lambda: np.add(grad, other, out=out))
    print(
        f"numpy pass (a+b, {SIZE:,} float32): median {base * 1e3:8.1f} ms  "
        f"{SIZE / base / 1e6:8.1f} M elem/s  {3 * 4 * SIZE / base / 1e9:6.2f} GB/s"
    )
    rows: list[tuple[str, Callable[[], object]]] = []
    for bin_size in (50, 500):
        for dtype in (np.float64, np.float32):
            comp = AdaComp(bin_size=bin_size, residue_dtype=dtype)
            name = f"AdaComp L_T={bin_size} residue {np.dtype(dtype).name}"
            rows.append((name, lambda c=comp: c.compress(grad)))
    for chunk in (None, 4096):
        sc = ScaleCom(1, ratio=100.0, chunk_size=chunk)
        rows.append(
            (
                f"ScaleCom leader, top-k {'chunk 4096' if chunk else 'global'}",
                lambda s=sc: s.step([grad]),
            )
        )
    for name, fn in rows:
        t = _median_s(fn)
        print(
            f"{name:42s} median {t * 1e3:8.1f} ms  {SIZE / t / 1e6:8.1f} M elem/s  "
            f"{t / base:5.1f}x a numpy pass"
        )


if __name__ == "__main__":
    main()
