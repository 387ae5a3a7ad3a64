"""Exception types of the ``models`` package; each message names the field and the numbers."""

from __future__ import annotations

__all__ = [
    "InvalidModelError",
    "InvalidPlanError",
    "MemoryCapacityError",
    "ModelsError",
    "UnknownPresetError",
]


class ModelsError(ValueError):
    """Base class of every error raised for bad model, device or plan input."""


class InvalidModelError(ModelsError):
    """A model description that is inconsistent (e.g. hidden size not divisible by heads)."""


class UnknownPresetError(ModelsError):
    """A model or device name that is not a preset; the message lists the known names."""


class InvalidPlanError(ModelsError):
    """A parallelism plan that does not fit the model or the GPU count."""


class MemoryCapacityError(InvalidPlanError):
    """A plan whose per-GPU memory exceeds the device capacity."""
