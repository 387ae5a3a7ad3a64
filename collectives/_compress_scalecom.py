"""ScaleCom (Chen et al., NeurIPS 2020): cyclic local top-k with low-pass filtered memory.

All learners of a data-parallel group, simulated together in numpy (arXiv 2104.11125):

1. every learner accumulates ``a_i = m_i + g_i`` (its memory plus the new gradient);
2. the leader ``l = t mod n`` picks the top-k indices ``I_t`` of ``|a_l|`` (optionally chunk
   by chunk, which cuts the selection cost) and broadcasts them;
3. every learner sends ``a_i[I_t]``: the same indices everywhere, so the values sum with a
   standard all-reduce of ``k`` elements and do not build up with the number of learners;
4. the memory is low-pass filtered: ``m_i <- (1 - beta) m_i + beta (a_i - C(a_i))`` where
   ``C(a_i)`` is ``a_i`` at ``I_t`` and zero elsewhere; ``beta = 1`` is plain error
   feedback (the exact form of the filter is recalled, not re-checked against the paper).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ._compress_spec import CompressionError
from ._compress_stats import CompressionStats

__all__ = ["ScaleCom", "ScaleComResult"]

FloatArray = npt.NDArray[np.floating]
IndexArray = npt.NDArray[np.int64]

#: Memory passes over the gradient on the critical path: accumulate (3), |a| (2), top-k
#: partition (about 3); gathering k values and zeroing them are negligible.
_PASSES = 8.0


@dataclass(frozen=True)
class ScaleComResult:
    """One ScaleCom step: the shared indices, every learner's values, their sum, memories."""

    leader: int
    indices: IndexArray
    values: tuple[FloatArray, ...]
    reduced: FloatArray
    memories: tuple[FloatArray, ...]
    stats: CompressionStats

    def sent_dense(self, learner: int) -> FloatArray:
        """What ``learner`` sent, as a dense array shaped like the gradient."""
        out = np.zeros_like(self.memories[learner])
        out.reshape(-1)[self.indices] = self.values[learner]
        return out


class ScaleCom:
    """ScaleCom over ``num_learners`` learners, keeping a memory per learner and layer.

    ``ratio`` is the paper's compression ratio ``d / k`` (65-400x); ``beta`` the low-pass
    filter coefficient in (0, 1]; ``chunk_size`` switches to a chunk-wise top-k, ``k / d`` of
    every chunk. On the wire a learner sends ``k`` values of ``value_bytes`` and receives the
    leader's ``k`` indices of ``index_bytes``; the dense gradient costs ``dense_value_bytes``.

    >>> import numpy as np
    >>> sc = ScaleCom(2, ratio=4.0)
    >>> g = np.array([0.1, -2.0, 0.3, 0.2, 1.0, 0.0, 0.0, 0.5], np.float32)
    >>> sc.step([g, g]).indices.tolist()
    [1, 4]
    """

    def __init__(
        self,
        num_learners: int,
        ratio: float = 100.0,
        *,
        beta: float = 1.0,
        chunk_size: int | None = None,
        value_bytes: float = 4.0,
        index_bytes: float = 4.0,
        dense_value_bytes: float = 4.0,
    ) -> None:
        if not 1 <= num_learners <= 1 << 16:
            raise CompressionError(
                f"ScaleCom.num_learners must be in [1, 65536], got {num_learners}"
            )
        if not 1.0 <= ratio <= 1e6:
            raise CompressionError(f"ScaleCom.ratio must be in [1, 1e6], got {ratio}")
        if not 0.0 < beta <= 1.0:
            raise CompressionError(f"ScaleCom.beta must be in (0, 1], got {beta}")
        if chunk_size is not None and not 1 <= chunk_size <= 1 << 30:
            raise CompressionError(f"ScaleCom.chunk_size must be in [1, 2**30], got {chunk_size}")
        self.num_learners = num_learners
        self.ratio = ratio
        self.beta = beta
        self.chunk_size = chunk_size
        self.value_bytes = value_bytes
        self.index_bytes = index_bytes
        self.dense_value_bytes = dense_value_bytes
        self._memories: dict[str, list[FloatArray]] = {}
        self._steps: dict[str, int] = {}

    def memory(self, learner: int, name: str = "grad") -> FloatArray | None:
        """Learner ``learner``'s memory for layer ``name`` (None before the first step)."""
        mems = self._memories.get(name)
        return None if mems is None else mems[learner]

    def step(self, gradients: Sequence[npt.ArrayLike], name: str = "grad") -> ScaleComResult:
        """Compress every learner's gradient of layer ``name`` for this iteration."""
        grads = [np.asarray(g) for g in gradients]
        if len(grads) != self.num_learners:
            raise CompressionError(
                f"ScaleCom expects {self.num_learners} gradients (one per learner), "
                f"got {len(grads)}"
            )
        shape, dtype = grads[0].shape, grads[0].dtype
        if not np.issubdtype(dtype, np.floating):
            raise CompressionError(f"ScaleCom gradients must be floating point, got {dtype}")
        if any(g.shape != shape for g in grads):
            raise CompressionError(f"ScaleCom layer {name!r}: learners' gradient shapes differ")
        start = time.perf_counter()
        mems = self._memories.get(name)
        if mems is None:
            mems = [np.zeros(shape, dtype=dtype) for _ in grads]
        t = self._steps.get(name, 0)
        leader = t % self.num_learners
        accs = [np.add(m, g).reshape(-1) for m, g in zip(mems, grads, strict=True)]
        indices = self.top_k(accs[leader])
        values = tuple(a[indices] for a in accs)
        reduced = np.sum(np.stack(values), axis=0) if values[0].size else values[0].copy()
        new_mems: list[FloatArray] = []
        for mem, acc in zip(mems, accs, strict=True):
            acc[indices] = 0  # a - C(a): exactly what was not sent
            if self.beta == 1.0:
                new_mems.append(acc.reshape(shape))
            else:
                filtered = (1.0 - self.beta) * mem.reshape(-1) + self.beta * acc
                new_mems.append(filtered.astype(dtype, copy=False).reshape(shape))
        elapsed = time.perf_counter() - start
        self._memories[name] = new_mems
        self._steps[name] = t + 1
        n, k = accs[0].size, int(indices.size)
        stats = CompressionStats(
            method="scalecom",
            num_elements=n,
            selected=k,
            payload_bytes=k * (self.value_bytes + self.index_bytes),
            dense_bytes=n * self.dense_value_bytes,
            residue_norm=float(np.linalg.norm(new_mems[leader].astype(np.float64))),
            selection_passes=_PASSES,
            selection_s=elapsed,
        )
        return ScaleComResult(leader, indices, values, reduced, tuple(new_mems), stats)

    def num_selected(self, num_elements: int) -> int:
        """``k`` for a gradient of ``num_elements``: ``d / ratio`` rounded, at least one."""
        return max(1, min(num_elements, round(num_elements / self.ratio)))

    def top_k(self, acc: FloatArray) -> IndexArray:
        """Sorted indices of the ``k`` largest ``|acc|`` (per chunk with ``chunk_size``)."""
        n = acc.size
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        magnitude = np.abs(acc)
        size = self.chunk_size
        if size is None or size >= n:
            k = self.num_selected(n)
            return np.sort(np.argpartition(magnitude, n - k)[n - k :]).astype(np.int64)
        full = n // size
        per_chunk = self.num_selected(size)
        body = magnitude[: full * size].reshape(full, size)
        local = np.argpartition(body, size - per_chunk, axis=1)[:, size - per_chunk :]
        picked = (local + (np.arange(full) * size)[:, None]).reshape(-1)
        if n > full * size:
            tail = magnitude[full * size :]
            kt = self.num_selected(tail.size)
            extra = np.argpartition(tail, tail.size - kt)[tail.size - kt :] + full * size
            picked = np.concatenate([picked, extra])
        return np.sort(picked).astype(np.int64)
