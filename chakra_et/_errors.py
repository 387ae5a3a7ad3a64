"""Exception types of the ``chakra_et`` package; every one names what is wrong and where."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ChakraETError", "ETFormatError", "ETJSONError", "ETValidationError", "Problem"]


class ChakraETError(ValueError):
    """Base class of every error raised for bad Chakra ET input."""


class ETFormatError(ChakraETError):
    """An ``.et`` byte stream that is not a valid sequence of length-delimited messages."""

    def __init__(self, message: str, *, source: str = "<bytes>", offset: int | None = None) -> None:
        where = source if offset is None else f"{source} at byte {offset}"
        super().__init__(f"{where}: {message}")
        self.source = source
        self.offset = offset


class ETJSONError(ChakraETError):
    """A JSON document that is not a valid Chakra ET in the protobuf JSON mapping."""


@dataclass(frozen=True)
class Problem:
    """One validation finding: the node it concerns (None for graph-level), the field, why.

    ``severity`` is ``"error"`` (the graph cannot be simulated as is) or ``"warning"`` (it can,
    with the stated interpretation).
    """

    node_id: int | None
    field: str
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        where = "graph" if self.node_id is None else f"node {self.node_id}"
        tag = "" if self.severity == "error" else f" [{self.severity}]"
        return f"{where}: {self.field}: {self.message}{tag}"


class ETValidationError(ChakraETError):
    """A graph that parsed but breaks the rules of a simulatable Chakra ET; lists every problem."""

    def __init__(self, problems: list[Problem], *, source: str = "graph") -> None:
        self.problems = problems
        self.source = source
        head = "; ".join(str(p) for p in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        super().__init__(f"{source}: {len(problems)} problem(s): {head}{more}")
