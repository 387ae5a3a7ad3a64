"""Exception types of the engine; each names the rank, node, group or field at fault."""

from __future__ import annotations

__all__ = ["DeadlockError", "EngineError", "SystemConfigError", "WorkloadError"]


class EngineError(ValueError):
    """Base class of every error the engine raises for bad input."""


class WorkloadError(EngineError):
    """A workload that cannot be simulated: missing ranks, unknown process groups, bad files."""


class SystemConfigError(EngineError):
    """A system description with a bad or inconsistent field."""


class DeadlockError(EngineError):
    """The simulation stopped with nodes still waiting; the message lists who waits for what."""

    def __init__(self, message: str, waiting: list[str]) -> None:
        shown = "; ".join(waiting[:6])
        more = f" (and {len(waiting) - 6} more)" if len(waiting) > 6 else ""
        super().__init__(f"{message}: {shown}{more}")
        self.waiting = waiting
