"""``CompressionStats``: what one compression step achieved and what it cost."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CompressionStats"]


@dataclass(frozen=True)
class CompressionStats:
    """Outcome of compressing one gradient on one learner.

    ``payload_bytes`` is what the learner puts on the wire (values plus indices plus header);
    ``dense_bytes`` what the dense collective would send; ``selection_passes`` the memory
    passes over the gradient the selection took (the performance model's ``passes``) and
    ``selection_s`` its measured wall time. ``deferred`` counts AdaComp elements whose
    residue would not have been exact in floating point and so stayed in the residue.
    """

    method: str
    num_elements: int
    selected: int
    payload_bytes: float
    dense_bytes: float
    residue_norm: float
    selection_passes: float
    selection_s: float
    deferred: int = 0

    @property
    def ratio(self) -> float:
        """Achieved compression ratio: dense bytes over payload bytes (values plus indices)."""
        return self.dense_bytes / self.payload_bytes if self.payload_bytes > 0 else float("inf")

    @property
    def density(self) -> float:
        """Fraction of the gradient's elements that were sent."""
        return self.selected / self.num_elements if self.num_elements else 0.0
