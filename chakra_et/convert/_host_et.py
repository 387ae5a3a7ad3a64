"""Reader of PyTorch host execution traces (``ExecutionTraceObserver`` JSON, schemas 1.0.1-1.1.x).

Schema 1.0.1 keeps every field on the node (``parent``, ``rf_id``, ``inputs`` as a list);
1.0.2 and later nest ``inputs``/``outputs`` as ``{values, shapes, types}`` and move the rest
into an ``attrs`` list. Both are read into the same ``HostOp``. With msgspec installed, files
of the later layout are decoded straight into typed structs (``_host_fast``) and give the
same ``HostOp``s; everything else goes through ``json`` and the checking parser here.
"""

from __future__ import annotations

import gzip
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from trainsim.chakra_et.convert._errors import HostTraceError, UnsupportedSchemaError

__all__ = [
    "ET_PLUS_FIELDS",
    "SUPPORTED_SCHEMAS",
    "HostOp",
    "HostTrace",
    "attrs_duration",
    "check_schema",
    "host_trace_of",
    "iter_tensors",
    "load_host_trace",
    "node_duration",
    "parse_host_trace",
    "read_json_document",
    "read_trace_bytes",
    "typed_parser",
]

#: Host-ET schema families read here (``major.minor``); the patch and ``-chakra`` suffix vary.
SUPPORTED_SCHEMAS: tuple[str, ...] = ("1.0", "1.1")
_SCHEMA_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)")
_DURATION_FIELDS = ("exclusive_dur", "dur", "inclusive_dur")
#: Node fields the Chakra trace linker adds in an "ET+" trace (Kineto merged into the host
#: ET): kept in ``HostOp.attrs`` so GPU nodes (``cat``) and CPU spans can be read back.
ET_PLUS_FIELDS = ("cat", "ts", "inclusive_dur", "exclusive_dur", "stream")
_INT64 = 2**63


class HostOp:
    """One node of a host execution trace, in the form the converter needs.

    ``inputs``/``outputs`` are the raw values; ``input_types``/``output_types`` their type
    strings (``"Tensor(float)"``, ``"GenericList[Tensor(float)]"``; a malformed trace may
    hold other values there, which read as "not a tensor"); ``duration_us`` is the
    CPU time the trace itself records (most traces record none: Kineto supplies it).
    """

    __slots__ = (
        "attrs",
        "duration_us",
        "id",
        "input_types",
        "inputs",
        "name",
        "output_types",
        "outputs",
        "parent",
        "rf_id",
        "scope",
        "tid",
    )

    def __init__(
        self,
        op_id: int,
        name: str,
        parent: int,
        *,
        rf_id: int = -1,
        tid: int = 0,
        scope: int = 0,
        inputs: list[Any] | None = None,
        input_types: list[Any] | None = None,
        outputs: list[Any] | None = None,
        output_types: list[Any] | None = None,
        attrs: dict[str, Any] | None = None,
        duration_us: float | None = None,
    ) -> None:
        self.id = op_id
        self.name = name
        self.parent = parent
        self.rf_id = rf_id
        self.tid = tid
        self.scope = scope
        self.inputs = inputs if inputs is not None else []
        self.input_types = input_types if input_types is not None else []
        self.outputs = outputs if outputs is not None else []
        self.output_types = output_types if output_types is not None else []
        self.attrs = attrs if attrs is not None else {}
        self.duration_us = duration_us

    def __repr__(self) -> str:
        return f"HostOp(id={self.id}, name={self.name!r}, parent={self.parent}, rf_id={self.rf_id})"


@dataclass
class HostTrace:
    """A parsed host execution trace: its schema, process id and ops in file order."""

    schema: str
    ops: list[HostOp]
    source: str = "<host trace>"
    pid: int | None = None
    by_id: dict[int, HostOp] = field(default_factory=dict)
    #: The ``time`` the observer wrote (local wall clock, ``YYYY-MM-DD HH:MM:SS``), if any.
    recorded_at: str | None = None

    def __post_init__(self) -> None:
        if not self.by_id:
            self.by_id = {op.id: op for op in self.ops}


def iter_tensors(value: Any, type_str: object) -> Iterator[tuple[int, int, int]]:
    """Yield ``(tensor_id, storage_id, size_bytes)`` for every tensor in one argument value."""
    if type(type_str) is not str or "Tensor" not in type_str:
        return
    stack = [value]
    while stack:
        item = stack.pop()
        if not isinstance(item, list):
            continue
        if (
            len(item) == 6
            and isinstance(item[0], int)
            and isinstance(item[3], int)
            and isinstance(item[4], int)
            and not isinstance(item[0], bool)
        ):
            yield item[0], item[1] if isinstance(item[1], int) else -1, item[3] * item[4]
        else:
            stack.extend(item)


def read_trace_bytes(name: str, error: type[Exception]) -> bytes:
    """The bytes of a file, gunzipped where it is gzip, raising ``error`` naming the file."""
    try:
        with open(name, "rb") as raw:
            data = raw.read()
        return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    except FileNotFoundError:
        raise error(f"{name}: no such file") from None
    except (OSError, EOFError) as exc:
        raise error(f"{name}: cannot read: {exc}") from None


def _decode_json(data: bytes, name: str, error: type[Exception]) -> Any:
    """Decode JSON with the standard module, raising ``error`` naming the file."""
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{name}: not valid JSON: {exc}") from None


def read_json_document(path: str | os.PathLike[str], error: type[Exception]) -> Any:
    """Read a ``.json`` or ``.json.gz`` file, raising ``error`` naming the file on failure."""
    name = os.fspath(path)
    return _decode_json(read_trace_bytes(name, error), name, error)


def check_schema(schema: object, source: str) -> str:
    """The schema version string, if it is of a supported family; else raise."""
    if not isinstance(schema, str):
        raise HostTraceError(f"{source}: 'schema' must be a version string, got {schema!r}")
    match = _SCHEMA_RE.match(schema)
    family = f"{match.group(1)}.{match.group(2)}" if match else None
    if family not in SUPPORTED_SCHEMAS:
        raise UnsupportedSchemaError(
            f"{source}: host execution trace schema {schema!r} is not supported "
            f"(supported: {', '.join(s + '.x' for s in SUPPORTED_SCHEMAS)})"
        )
    return schema


def _int_field(raw: dict[str, Any], key: str, default: int, source: str, op_id: object) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not -_INT64 <= value < _INT64:
        raise HostTraceError(f"{source}: node {op_id}: field {key!r} must be a 64-bit integer")
    return value


def _list_field(value: object, what: str, source: str, op_id: int) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise HostTraceError(f"{source}: node {op_id}: {what} must be a list")
    return value


def _types(value: object, what: str, source: str, op_id: int) -> list[str]:
    items = _list_field(value, what, source, op_id)
    return [t if isinstance(t, str) else "" for t in items]


def node_duration(raw: dict[str, Any], attrs: dict[str, Any]) -> float | None:
    """The CPU time a node records: its own duration fields first, then its ``attrs``."""
    for key in _DURATION_FIELDS:
        value = raw.get(key, attrs.get(key))
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
            return float(value)
    return None


def attrs_duration(attrs: dict[str, Any]) -> float | None:
    """The CPU time a node's ``attrs`` record (for a node with no duration field of its own)."""
    return node_duration({}, attrs)


def _parse_new_fast(raw: dict[str, Any]) -> HostOp | None:
    """The common, well-formed 1.0.2+ node without per-field checks; None sends it to the
    checking parser (which raises the precise error, or accepts an unusual but valid node)."""
    try:
        op_id, name, parent = raw["id"], raw["name"], raw["ctrl_deps"]
        attrs = {a["name"]: a.get("value") for a in raw["attrs"]}
        inputs, outputs = raw["inputs"], raw["outputs"]
        in_values, in_types = inputs["values"], inputs["types"]
        out_values, out_types = outputs["values"], outputs["types"]
    except (KeyError, TypeError, AttributeError):
        return None
    rf_id, tid, scope = attrs.get("rf_id", -1), attrs.get("tid", 0), attrs.get("scope", 0)
    if not (
        type(op_id) is int
        and type(parent) is int
        and type(name) is str
        and type(rf_id) is int
        and type(tid) is int
        and type(scope) is int
        and type(in_values) is list
        and type(in_types) is list
        and type(out_values) is list
        and type(out_types) is list
        and -_INT64 <= op_id < _INT64
        and -_INT64 <= parent < _INT64
        and -_INT64 <= rf_id < _INT64
        and "exclusive_dur" not in raw
        and "dur" not in raw
        and "inclusive_dur" not in raw
        and "cat" not in raw
        and "ts" not in raw
    ):
        return None
    return HostOp(
        op_id,
        name,
        parent,
        rf_id=rf_id,
        tid=tid,
        scope=scope,
        inputs=in_values,
        input_types=in_types,
        outputs=out_values,
        output_types=out_types,
        attrs=attrs,
        duration_us=attrs_duration(attrs) if "exclusive_dur" in attrs or "dur" in attrs else None,
    )


def _parse_new(raw: dict[str, Any], source: str) -> HostOp:
    """A node of schema 1.0.2+: ``ctrl_deps`` parent, nested inputs, ``attrs`` list."""
    op_id = _int_field(raw, "id", 0, source, raw.get("id"))
    name = raw.get("name")
    if not isinstance(name, str):
        raise HostTraceError(f"{source}: node {op_id}: field 'name' must be a string")
    parent = _int_field(raw, "ctrl_deps", -1, source, op_id)
    attrs: dict[str, Any] = {}
    for attr in _list_field(raw.get("attrs"), "'attrs'", source, op_id):
        if not isinstance(attr, dict) or not isinstance(attr.get("name"), str):
            raise HostTraceError(f"{source}: node {op_id}: malformed entry in 'attrs': {attr!r}")
        attrs[attr["name"]] = attr.get("value")
    for key in ET_PLUS_FIELDS:
        if key in raw:
            attrs.setdefault(key, raw[key])
    args = []
    for key in ("inputs", "outputs"):
        block = raw.get(key) or {}
        if not isinstance(block, dict):
            raise HostTraceError(f"{source}: node {op_id}: field {key!r} must be an object")
        args.append(
            (
                _list_field(block.get("values"), f"{key}.values", source, op_id),
                _types(block.get("types"), f"{key}.types", source, op_id),
            )
        )
    return HostOp(
        op_id,
        name,
        parent,
        rf_id=_int_attr(attrs, "rf_id", -1, source, op_id),
        tid=_int_attr(attrs, "tid", 0, source, op_id),
        scope=_int_attr(attrs, "scope", 0, source, op_id),
        inputs=args[0][0],
        input_types=args[0][1],
        outputs=args[1][0],
        output_types=args[1][1],
        attrs=attrs,
        duration_us=node_duration(raw, attrs),
    )


def _int_attr(attrs: dict[str, Any], key: str, default: int, source: str, op_id: int) -> int:
    value = attrs.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not -_INT64 <= value < _INT64:
        raise HostTraceError(f"{source}: node {op_id}: attribute {key!r} must be a 64-bit integer")
    return value


def _parse_old(raw: dict[str, Any], source: str) -> HostOp:
    """A node of schema 1.0.1: every field flat on the node, ``parent`` for the parent."""
    op_id = _int_field(raw, "id", 0, source, raw.get("id"))
    name = raw.get("name")
    if not isinstance(name, str):
        raise HostTraceError(f"{source}: node {op_id}: field 'name' must be a string")
    return HostOp(
        op_id,
        name,
        _int_field(raw, "parent", -1, source, op_id),
        rf_id=_int_field(raw, "rf_id", -1, source, op_id),
        tid=_int_field(raw, "tid", 0, source, op_id),
        scope=_int_field(raw, "scope", 0, source, op_id),
        inputs=_list_field(raw.get("inputs"), "'inputs'", source, op_id),
        input_types=_types(raw.get("input_types"), "'input_types'", source, op_id),
        outputs=_list_field(raw.get("outputs"), "'outputs'", source, op_id),
        output_types=_types(raw.get("output_types"), "'output_types'", source, op_id),
        attrs={
            k: raw[k]
            for k in ("op_schema", "seq_id", "fw_parent", "fw_tid", *ET_PLUS_FIELDS)
            if k in raw
        },
        duration_us=node_duration(raw, {}),
    )


def parse_host_trace(document: object, source: str = "<host trace>") -> HostTrace:
    """Parse a decoded host-ET JSON document; raise ``HostTraceError`` naming node and field."""
    if not isinstance(document, dict):
        raise HostTraceError(f"{source}: a host execution trace is a JSON object with 'nodes'")
    schema = check_schema(document.get("schema"), source)
    nodes = document.get("nodes")
    if not isinstance(nodes, list):
        raise HostTraceError(f"{source}: field 'nodes' must be a list")
    old_layout = schema.startswith("1.0.1")
    parse = _parse_old if old_layout else _parse_new
    ops: list[HostOp] = []
    by_id: dict[int, HostOp] = {}
    for index, raw in enumerate(nodes):
        if type(raw) is not dict:
            raise HostTraceError(f"{source}: nodes[{index}] is not a JSON object")
        op = None if old_layout else _parse_new_fast(raw)
        if op is None:
            op = parse(raw, source)
        if op.id in by_id:
            raise HostTraceError(f"{source}: node {op.id}: duplicate node id")
        by_id[op.id] = op
        ops.append(op)
    return host_trace_of(schema, ops, source, document.get("pid"), document.get("time"), by_id)


def host_trace_of(
    schema: str,
    ops: list[HostOp],
    source: str,
    pid: object,
    recorded_at: object,
    by_id: dict[int, HostOp] | None = None,
) -> HostTrace:
    """The ``HostTrace`` of parsed ops (``by_id`` indexes them, if already done); raise
    ``HostTraceError`` on a duplicate node id."""
    if by_id is None:
        by_id = {op.id: op for op in ops}
    if len(by_id) != len(ops):
        seen: set[int] = set()
        for op in ops:
            if op.id in seen:
                raise HostTraceError(f"{source}: node {op.id}: duplicate node id")
            seen.add(op.id)
    return HostTrace(
        schema,
        ops,
        source=source,
        pid=pid if isinstance(pid, int) and not isinstance(pid, bool) else None,
        by_id=by_id,
        recorded_at=recorded_at if isinstance(recorded_at, str) else None,
    )


TypedParser = Callable[[bytes, str], "HostTrace | None"]


def typed_parser() -> TypedParser | None:
    """msgspec's typed reader of the common layout (``_host_fast``), or None without msgspec."""
    try:
        from trainsim.chakra_et.convert._host_fast import parse_typed
    except ImportError:
        return None
    return parse_typed


def load_host_trace(path: str | os.PathLike[str]) -> HostTrace:
    """Read a host execution trace from a ``.json`` or ``.json.gz`` file.

    With msgspec installed, a trace in the common layout is decoded straight into its ops;
    any other (and every trace without msgspec) is read with ``json`` and checked field by
    field. Both give the same ops."""
    name = os.fspath(path)
    data = read_trace_bytes(name, HostTraceError)
    parse_typed = typed_parser()
    trace = parse_typed(data, name) if parse_typed is not None else None
    if trace is None:
        trace = parse_host_trace(_decode_json(data, name, HostTraceError), source=name)
    return trace
