"""Exception and warning types of the PyTorch trace converter; each names the file and field."""

from __future__ import annotations

from trainsim.chakra_et._errors import ChakraETError

__all__ = [
    "ConversionWarning",
    "HostTraceError",
    "KinetoTraceError",
    "RunMismatchError",
    "TraceConversionError",
    "UnsupportedSchemaError",
]


class TraceConversionError(ChakraETError):
    """Base class of every error raised while converting a PyTorch trace."""


class HostTraceError(TraceConversionError):
    """A host execution trace (ExecutionTraceObserver JSON) that cannot be read."""


class UnsupportedSchemaError(HostTraceError):
    """A host execution trace whose ``schema`` version this converter does not know."""


class KinetoTraceError(TraceConversionError):
    """A Kineto (chrome trace) device trace that cannot be read."""


class RunMismatchError(TraceConversionError):
    """A host trace and a Kineto trace that are not from the same run (pid, time, matches)."""


class ConversionWarning(UserWarning):
    """Something in the traces the converter worked around (e.g. host and Kineto mismatch)."""
