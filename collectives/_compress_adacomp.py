"""AdaComp (Chen et al., AAAI 2018): localized residue selection with error feedback, in numpy.

Per learner and per layer, each iteration (arXiv 1712.02679; the step order and the
quantization scale follow an MXNet ``ada_comp`` contrib operator, since the paper's full text
could not be read here):

1. ``G = R + dW``: the residue ``R`` carried from earlier iterations plus the new gradient;
2. ``H = G + dW``: the recent gradient counted twice, so an "active" element is picked sooner;
3. split ``G`` into bins of ``L_T`` consecutive elements and take each bin's ``max |G|``;
4. send every element with ``|H| >= max_bin |G|`` (at least about one per bin, more where the
   gradient is active): the compression rate adapts to local activity, with no sorting;
5. quantize what is sent to ``sign(G) * s`` with one scale per layer, ``s`` = the mean of the
   bin maxima (ternary: one sign bit per sent element, plus its index);
6. ``R = G - sent``: everything not sent, and the quantization error, carries forward.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ._compress_spec import CompressionError
from ._compress_stats import CompressionStats

__all__ = ["AdaComp", "AdaCompResult"]

FloatArray = npt.NDArray[np.floating]
IndexArray = npt.NDArray[np.int64]

#: Memory passes over the gradient one ``compress`` makes: accumulate (3), H (3), bin maxima
#: (2), compare (2), index extraction (1); the per-selected-element work is negligible.
_PASSES = 11.0


@dataclass(frozen=True)
class AdaCompResult:
    """One learner's compressed gradient: the indices sent, their values, the new residue."""

    indices: IndexArray
    values: FloatArray
    scale: float
    residue: FloatArray
    stats: CompressionStats

    def sent_dense(self) -> FloatArray:
        """What was sent, as a dense array shaped like the gradient (zero where not sent)."""
        out = np.zeros_like(self.residue)
        out.reshape(-1)[self.indices] = self.values
        return out


class AdaComp:
    """AdaComp compressor of one learner, keeping a residue per named layer.

    ``bin_size`` is the paper's single hyper-parameter ``L_T`` (about 50 for convolutions and
    500 for fully-connected and recurrent layers [recalled, not re-checked]). A sent element
    costs ``index_bits + value_bits`` on the wire (a 32-bit index and a sign bit), plus
    ``header_bytes`` per layer for the count and the scale; the dense gradient costs
    ``dense_bits`` per element. The residue is kept in ``residue_dtype`` (float64 by default,
    so that residue plus sent equals the accumulated gradient exactly; float32 halves its
    memory but defers elements whose residue would round).

    >>> import numpy as np
    >>> comp = AdaComp(bin_size=4)
    >>> out = comp.compress(np.array([0.1, -2.0, 0.3, 0.2, 1.0, 0.0, 0.0, 0.5], np.float32))
    >>> out.indices.tolist(), out.values.tolist()
    ([1, 4, 7], [-1.5, 1.5, 1.5])
    """

    def __init__(
        self,
        bin_size: int = 50,
        *,
        index_bits: int = 32,
        value_bits: int = 1,
        header_bytes: int = 8,
        dense_bits: int = 32,
        residue_dtype: npt.DTypeLike = np.float64,
    ) -> None:
        if not 1 <= bin_size <= 1 << 20:
            raise CompressionError(f"AdaComp.bin_size must be in [1, 2**20], got {bin_size}")
        for field, value in (("index_bits", index_bits), ("value_bits", value_bits)):
            if not 1 <= value <= 64:
                raise CompressionError(f"AdaComp.{field} must be in [1, 64], got {value}")
        if header_bytes < 0 or dense_bits <= 0:
            raise CompressionError(
                f"AdaComp.header_bytes must be >= 0 and dense_bits > 0, "
                f"got {header_bytes} and {dense_bits}"
            )
        self.bin_size = bin_size
        self.index_bits = index_bits
        self.value_bits = value_bits
        self.header_bytes = header_bytes
        self.dense_bits = dense_bits
        self.residue_dtype = np.dtype(residue_dtype)
        if not np.issubdtype(self.residue_dtype, np.floating):
            raise CompressionError(f"AdaComp.residue_dtype must be floating, got {residue_dtype}")
        self._residues: dict[str, FloatArray] = {}

    def residue(self, name: str = "grad") -> FloatArray | None:
        """The residue carried for layer ``name`` (None before its first ``compress``)."""
        return self._residues.get(name)

    def reset(self) -> None:
        """Forget every residue."""
        self._residues.clear()

    def compress(self, gradient: npt.ArrayLike, name: str = "grad") -> AdaCompResult:
        """Compress this iteration's ``gradient`` of layer ``name`` and update its residue."""
        grad = np.asarray(gradient)
        if not np.issubdtype(grad.dtype, np.floating):
            raise CompressionError(f"AdaComp gradient must be floating point, got {grad.dtype}")
        start = time.perf_counter()
        residue = self._residues.get(name)
        if residue is None:
            residue = np.zeros(grad.shape, dtype=self.residue_dtype)
        elif residue.shape != grad.shape:
            raise CompressionError(
                f"AdaComp layer {name!r}: gradient shape {grad.shape} differs from the "
                f"residue's {residue.shape}"
            )
        # The residue array becomes G in place: it is the residue again once the sent
        # elements are taken out, so the step allocates only H.
        np.add(residue, grad, out=residue)
        acc = residue.reshape(-1)
        active = np.add(acc, grad.reshape(-1))
        np.abs(active, out=active)
        bin_max = self._bin_max(acc)
        selected = self._select(active, bin_max)
        del active
        chosen = acc[selected]
        keep = chosen != 0  # an element at zero has nothing to send
        # The scale goes on the wire as a float32.
        scale = np.float32(bin_max.mean()) if bin_max.size else np.float32(0)
        values = np.where(chosen > 0, scale, -scale).astype(acc.dtype)
        left = chosen - values
        # Keep the books exact: an element is sent only if residue + sent reproduces G bit
        # for bit. A float64 residue has 29 bits to spare over float32 data, so this holds
        # unless G and the scale are 2**29 apart; a float32 residue loses G's low bits
        # whenever the scale is a few times larger than G, and defers those elements.
        exact = left + values == chosen
        keep &= exact
        deferred = int(np.count_nonzero(~exact))
        indices = selected[keep]
        values = values[keep]
        acc[indices] = left[keep]
        elapsed = time.perf_counter() - start
        self._residues[name] = residue
        n = acc.size
        payload = self.header_bytes + indices.size * (self.index_bits + self.value_bits) / 8.0
        stats = CompressionStats(
            method="adacomp",
            num_elements=n,
            selected=int(indices.size),
            payload_bytes=payload,
            dense_bytes=n * self.dense_bits / 8.0,
            residue_norm=float(np.linalg.norm(acc.astype(np.float64))),
            selection_passes=_PASSES,
            selection_s=elapsed,
            deferred=deferred,
        )
        return AdaCompResult(indices, values, float(scale), residue, stats)

    def _bin_max(self, acc: FloatArray) -> FloatArray:
        """``max |G|`` of every bin (the last bin may be short)."""
        n, size = acc.size, self.bin_size
        full = n // size
        # max and -min avoid materializing |G|: two reads instead of a read-write-read.
        body = acc[: full * size].reshape(full, size)
        out = np.maximum(body.max(axis=1), -body.min(axis=1)) if full else acc[:0]
        if n > full * size:
            tail = acc[full * size :]
            out = np.append(out, max(float(tail.max()), -float(tail.min())))
        return out.astype(acc.dtype, copy=False)

    def _select(self, active: FloatArray, bin_max: FloatArray) -> IndexArray:
        """Indices whose ``|H|`` reaches their bin's maximum."""
        n, size = active.size, self.bin_size
        full = n // size
        mask = np.empty(n, dtype=bool)
        if full:
            np.greater_equal(
                active[: full * size].reshape(full, size),
                bin_max[:full, None],
                out=mask[: full * size].reshape(full, size),
            )
        if n > full * size:
            np.greater_equal(active[full * size :], bin_max[-1], out=mask[full * size :])
        return np.flatnonzero(mask).astype(np.int64, copy=False)


def expected_ratio(bin_size: int, selected_per_bin: float, bits: int = 33) -> float:
    """Compression ratio of AdaComp sending ``selected_per_bin`` elements per bin of 32-bit data.

    >>> round(expected_ratio(50, 1.0), 1)
    48.5
    """
    return 32.0 * bin_size / (bits * selected_per_bin) if selected_per_bin > 0 else math.inf
