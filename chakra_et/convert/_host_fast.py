"""A typed msgspec reader for the common host-ET layout (schema 1.0.2+), used when msgspec
is installed.

msgspec decodes each node straight into small structs that hold only what the converter
reads (no dict per node, no tensor shapes), several times faster than ``json`` plus
``_host_et``'s per-field checks. Every node reads as ``_host_et`` reads it (its fast path
for complete nodes, ``_parse_new``'s defaults for the others). Where that parser would raise
an error, or the document does not fit these structs (schema 1.0.1, a missing or mistyped
field, a non-string type, non-finite numbers), ``parse_typed`` returns None and the caller reads
the file with the standard ``json`` module and the checking parser, so errors and unusual
traces read exactly as they always did.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from trainsim.chakra_et.convert._host_et import (
    ET_PLUS_FIELDS,
    HostOp,
    HostTrace,
    attrs_duration,
    check_schema,
    host_trace_of,
    node_duration,
)

__all__ = ["parse_typed"]

_INT64 = 2**63
_Int64 = Annotated[int, msgspec.Meta(ge=-_INT64, le=_INT64 - 1)]
_UNSET: Any = msgspec.UNSET


class _Attr(msgspec.Struct, gc=False):
    """One entry of a node's ``attrs`` list (its ``type`` is not needed)."""

    name: str
    value: Any = None


class _Args(msgspec.Struct, gc=False):
    """A node's ``inputs`` or ``outputs`` block (``shapes`` is not needed)."""

    values: list[Any]
    types: list[str]


class _Node(msgspec.Struct, gc=False):
    """A host-ET node. PyTorch writes ``id``, ``name``, ``ctrl_deps`` and ``attrs`` on every
    node, and ``inputs``/``outputs`` on all but the thread roots; the ET+ fields (``UNSET``
    where absent) send a node to the defaults of ``_parse_new``."""

    id: _Int64
    name: str
    ctrl_deps: _Int64
    attrs: list[_Attr]
    inputs: _Args = _UNSET
    outputs: _Args = _UNSET
    cat: Any = _UNSET
    ts: Any = _UNSET
    dur: Any = _UNSET
    inclusive_dur: Any = _UNSET
    exclusive_dur: Any = _UNSET
    stream: Any = _UNSET


class _Document(msgspec.Struct, gc=False):
    """The top level of a host ET."""

    nodes: list[_Node]
    schema: Any = None
    pid: Any = None
    time: Any = None


_DECODER = msgspec.json.Decoder(_Document)


def _host_op(node: _Node) -> HostOp | None:
    """The ``HostOp`` of a node, as ``_host_et`` reads it; None where the checking parser
    must read it (it raises an error there)."""
    inputs, outputs = node.inputs, node.outputs
    # The complete node of ``_host_et``'s fast path (checks inline: this runs per node).
    if (
        inputs is _UNSET
        or outputs is _UNSET
        or node.cat is not _UNSET
        or node.ts is not _UNSET
        or node.dur is not _UNSET
        or node.inclusive_dur is not _UNSET
        or node.exclusive_dur is not _UNSET
    ):
        return _irregular_op(node)
    attrs = {a.name: a.value for a in node.attrs}
    rf_id, tid, scope = attrs.get("rf_id", -1), attrs.get("tid", 0), attrs.get("scope", 0)
    if not (
        type(rf_id) is int and type(tid) is int and type(scope) is int and -_INT64 <= rf_id < _INT64
    ):
        return _irregular_op(node)
    return HostOp(
        node.id,
        node.name,
        node.ctrl_deps,
        rf_id=rf_id,
        tid=tid,
        scope=scope,
        inputs=inputs.values,
        input_types=inputs.types,
        outputs=outputs.values,
        output_types=outputs.types,
        attrs=attrs,
        duration_us=attrs_duration(attrs) if "exclusive_dur" in attrs or "dur" in attrs else None,
    )


def _int_attr(attrs: dict[str, Any], key: str, default: int) -> int | None:
    """An integer attribute, None where it is no 64-bit integer."""
    value = attrs.get(key, default)
    return value if type(value) is int and -_INT64 <= value < _INT64 else None


def _block(args: _Args) -> tuple[list[Any], list[str]]:
    """The values and types of an ``inputs``/``outputs`` block, empty where there is none."""
    return ([], []) if args is _UNSET else (args.values, args.types)


def _irregular_op(node: _Node) -> HostOp | None:
    """A node lacking fields or carrying ET+ ones (thread roots, ProfilerStep, ET+ nodes),
    with the defaults of ``_host_et._parse_new``; None where that raises an error."""
    attrs = {a.name: a.value for a in node.attrs}
    raw: dict[str, Any] = {}
    for key in ET_PLUS_FIELDS:
        value = getattr(node, key)
        if value is not _UNSET:
            attrs.setdefault(key, value)
            raw[key] = value
    if node.dur is not _UNSET:
        raw["dur"] = node.dur
    rf_id = _int_attr(attrs, "rf_id", -1)
    tid, scope = _int_attr(attrs, "tid", 0), _int_attr(attrs, "scope", 0)
    if rf_id is None or tid is None or scope is None:
        return None
    inputs, input_types = _block(node.inputs)
    outputs, output_types = _block(node.outputs)
    return HostOp(
        node.id,
        node.name,
        node.ctrl_deps,
        rf_id=rf_id,
        tid=tid,
        scope=scope,
        inputs=inputs,
        input_types=input_types,
        outputs=outputs,
        output_types=output_types,
        attrs=attrs,
        duration_us=node_duration(raw, attrs),
    )


def parse_typed(data: bytes, source: str) -> HostTrace | None:
    """Parse a host ET's bytes; None where the document needs the ``json`` path (module
    docstring). Raises ``HostTraceError`` only for what the ``json`` path raises as well (an
    unsupported schema, a duplicate node id)."""
    try:
        document = _DECODER.decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    schema = check_schema(document.schema, source)
    if schema.startswith("1.0.1"):
        return None
    ops: list[HostOp] = []
    for node in document.nodes:
        op = _host_op(node)
        if op is None:
            return None
        ops.append(op)
    return host_trace_of(schema, ops, source, document.pid, document.time)
