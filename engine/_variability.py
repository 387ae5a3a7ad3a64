"""``VariabilitySpec``: how kernel times, GPUs and links vary around the deterministic model.

Every duration the deterministic engine computes is multiplied, per Monte Carlo sample, by a
*relative duration* factor drawn from the distribution of its kernel class (GEMM, attention,
elementwise, each collective kind...). On top of that: a persistent slowdown for a fraction of
GPUs (power or thermal capping), a per-node factor shared by the GPUs of one server (the
correlation within a node), and bandwidth degradation of a fraction of links, which slows the
collectives whose group crosses one. The spec is data: pydantic, loadable from YAML/JSON.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from trainsim.engine._config import load_model_file
from trainsim.engine._errors import EngineError

__all__ = [
    "COMM_CLASSES",
    "COMPUTE_CLASSES",
    "KERNEL_CLASSES",
    "Distribution",
    "ForecastConfigError",
    "VariabilitySpec",
    "classify_compute",
    "load_variability",
]

#: Compute kernel classes; ``compute`` is the fallback of the other three.
COMPUTE_CLASSES = ("gemm", "attention", "elementwise", "compute")
#: Communication classes (collective operations and point-to-point); ``comm`` is the fallback.
COMM_CLASSES = (
    "all_reduce",
    "all_gather",
    "reduce_scatter",
    "all_to_all",
    "broadcast",
    "reduce",
    "gather",
    "scatter",
    "barrier",
    "send_recv",
    "comm",
)
#: Every key ``VariabilitySpec.kernels`` accepts.
KERNEL_CLASSES = (*COMPUTE_CLASSES, "cpu", "memory", *COMM_CLASSES)

_ELEMENTWISE = re.compile(
    r"norm|act|silu|gelu|relu|softmax|dropout|elementwise|embedding|"
    r"cross_entropy|optimizer|adam|add|mul|copy|cast|vector"
)
_ATTENTION = re.compile(r"attn_core|attention|flash|sdpa|fmha|attn")
_GEMM = re.compile(r"gemm|matmul|linear|mm|qkv|proj|fc|mlp|logits|router|experts|xmma|cutlass")


class ForecastConfigError(EngineError):
    """A variability, failure or forecast setting out of its allowed range."""


def classify_compute(name: str, op: str | None = None, has_gemm_shape: bool = False) -> str:
    """Kernel class of a compute node from its ``op`` attribute, GEMM shape or name.

    Layer-granularity nodes of the generator carry the layer's dominant ``gemm_shape`` and are
    GEMM time for the most part, so they count as ``gemm``.
    """
    label = (op or name).lower()
    if op is None and has_gemm_shape:
        return "gemm"
    if _ATTENTION.search(label) and "norm" not in label:
        return "attention"
    if _ELEMENTWISE.search(label):
        return "elementwise"
    if has_gemm_shape or _GEMM.search(label):
        return "gemm"
    return "compute"


class Distribution(BaseModel):
    """The distribution of a relative duration (1.0 = the deterministic time).

    ``normal`` (truncated at ``min_factor``), ``lognormal`` and ``gamma`` are set by ``mean``
    and the coefficient of variation ``cv`` (std / mean); ``empirical`` resamples ``samples``
    (relative factors, e.g. measured durations over their mean: ``from_durations``);
    ``constant`` is always ``mean``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["constant", "normal", "lognormal", "gamma", "empirical"] = "constant"
    mean: float = Field(1.0, gt=0.0, le=100.0, description="mean relative duration")
    cv: float = Field(0.0, ge=0.0, le=5.0, description="coefficient of variation, std/mean")
    samples: tuple[float, ...] | None = Field(None, description="empirical relative factors")
    min_factor: float = Field(0.0, ge=0.0, le=1.0, description="floor of a normal draw")

    @model_validator(mode="after")
    def _check(self) -> Distribution:
        if self.kind == "empirical":
            if not self.samples:
                raise ValueError("kind 'empirical' needs a non-empty 'samples' list")
            if min(self.samples) <= 0.0 or not all(math.isfinite(v) for v in self.samples):
                raise ValueError("'samples' must be finite and > 0")
        elif self.samples is not None:
            raise ValueError(f"'samples' is only for kind 'empirical' (kind is {self.kind!r})")
        return self

    @classmethod
    def from_durations(cls, durations: Sequence[float]) -> Distribution:
        """An empirical distribution from measured durations, relative to their mean."""
        values = np.asarray(durations, dtype=np.float64)
        if values.size == 0 or np.any(values <= 0.0) or not np.all(np.isfinite(values)):
            raise ForecastConfigError("durations: need at least one finite duration > 0")
        return cls(kind="empirical", samples=tuple(float(v) for v in values / values.mean()))

    @property
    def is_constant(self) -> bool:
        """True when every draw is the same number."""
        if self.kind == "empirical":
            return self.samples is not None and len(set(self.samples)) == 1
        return self.kind == "constant" or self.cv == 0.0

    def sample(self, rng: np.random.Generator, size: int) -> NDArray[np.float64]:
        """``size`` draws of the relative duration."""
        if self.kind == "empirical":
            assert self.samples is not None
            pool = np.asarray(self.samples, dtype=np.float64)
            return pool[rng.integers(0, pool.size, size)]
        if self.is_constant:
            return np.full(size, self.mean)
        std = self.cv * self.mean
        if self.kind == "normal":
            draws: NDArray[np.float64] = rng.normal(self.mean, std, size)
            return np.maximum(draws, self.min_factor)
        if self.kind == "lognormal":
            sigma2 = math.log1p(self.cv**2)
            mu = math.log(self.mean) - sigma2 / 2.0
            return rng.lognormal(mu, math.sqrt(sigma2), size)
        shape = 1.0 / self.cv**2
        return rng.gamma(shape, self.mean / shape, size)


class VariabilitySpec(BaseModel):
    """Sources of step-time variability: kernel noise, slow GPUs, node correlation, links.

    ``kernels`` maps a kernel class (``KERNEL_CLASSES``: ``gemm``, ``attention``,
    ``elementwise``, ``compute`` as the fallback of compute classes, ``cpu``, ``memory``, a
    collective operation, ``send_recv``, ``comm`` as the fallback of communication) to its
    relative-duration distribution; unnamed classes do not vary. ``slow_gpu_fraction`` of the
    GPUs run all their compute ``slow_gpu_slowdown`` times slower for the whole step.
    ``node_factor`` multiplies the compute of all ``gpus_per_node`` GPUs of one server by one
    shared draw. ``degraded_link_fraction`` of the links run at ``degraded_bandwidth_factor``
    of their bandwidth; a collective over n ranks crosses about n links.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kernels: dict[str, Distribution] = Field(default_factory=dict)
    slow_gpu_fraction: float = Field(0.0, ge=0.0, le=1.0)
    slow_gpu_slowdown: float = Field(1.0, ge=1.0, le=100.0)
    node_factor: Distribution | None = None
    gpus_per_node: int = Field(8, ge=1, le=1024)
    degraded_link_fraction: float = Field(0.0, ge=0.0, le=1.0)
    degraded_bandwidth_factor: float = Field(1.0, gt=0.0, le=1.0)

    @field_validator("kernels")
    @classmethod
    def _known_classes(cls, kernels: dict[str, Distribution]) -> dict[str, Distribution]:
        unknown = sorted(set(kernels) - set(KERNEL_CLASSES))
        if unknown:
            raise ValueError(
                f"unknown kernel class {unknown[0]!r} (allowed: {', '.join(KERNEL_CLASSES)})"
            )
        return kernels

    @classmethod
    def none(cls) -> VariabilitySpec:
        """No variability at all: the forecast reproduces the deterministic step time."""
        return cls()

    @classmethod
    def prism(cls, gemm_cv: float = 0.035, comm_cv: float = 0.02) -> VariabilitySpec:
        """A PRISM-like setting: GEMM time with a 3.5% coefficient of variation (its
        spread over thousands of GPUs, about 4 sigma, reaches PRISM's "up to 14%" GEMM
        variation), attention and elementwise half as much, a small intrinsic noise on
        collectives, 1% of GPUs 10% slow.

        Values are stated assumptions shaped after PRISM's headline figures, not fitted to
        its data.
        """
        return cls(
            kernels={
                "gemm": Distribution(kind="lognormal", cv=gemm_cv),
                "attention": Distribution(kind="lognormal", cv=gemm_cv / 2),
                "elementwise": Distribution(kind="lognormal", cv=gemm_cv / 2),
                "comm": Distribution(kind="lognormal", cv=comm_cv),
            },
            slow_gpu_fraction=0.01,
            slow_gpu_slowdown=1.1,
        )

    @property
    def is_deterministic(self) -> bool:
        """True when no source varies."""
        return (
            all(d.is_constant and d.mean == 1.0 for d in self.kernels.values())
            and (self.slow_gpu_fraction == 0.0 or self.slow_gpu_slowdown == 1.0)
            and (self.node_factor is None or self.node_factor.is_constant)
            and (self.degraded_link_fraction == 0.0 or self.degraded_bandwidth_factor == 1.0)
        )

    @property
    def has_slow_gpus(self) -> bool:
        """True when a fraction of GPUs is persistently slow."""
        return self.slow_gpu_fraction > 0.0 and self.slow_gpu_slowdown > 1.0

    def without_slow_gpus(self) -> VariabilitySpec:
        """The same spec with every GPU at full speed (to attribute the slow GPUs' share)."""
        return self.model_copy(update={"slow_gpu_fraction": 0.0})

    def only(self, kernel_class: str) -> VariabilitySpec:
        """Only ``kernel_class`` varies (to attribute variability to a kernel class)."""
        kept = {k: d for k, d in self.kernels.items() if k == kernel_class}
        return VariabilitySpec(kernels=kept, gpus_per_node=self.gpus_per_node)

    def distribution(self, kernel_class: str) -> Distribution | None:
        """The distribution of a class, falling back to ``compute``/``comm``; None if fixed."""
        found = self.kernels.get(kernel_class)
        if found is None:
            if kernel_class in COMPUTE_CLASSES:
                found = self.kernels.get("compute")
            elif kernel_class in COMM_CLASSES:
                found = self.kernels.get("comm")
        if found is None or (found.is_constant and found.mean == 1.0):
            return None
        return found


def load_variability(path: str | Path) -> VariabilitySpec:
    """Read a ``VariabilitySpec`` from YAML/JSON (``prism`` names the built-in preset)."""
    if str(path) == "prism":
        return VariabilitySpec.prism()
    return load_model_file(path, VariabilitySpec, ForecastConfigError, "VariabilitySpec")
