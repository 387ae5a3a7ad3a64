"""Typed access to Chakra node and metadata attributes (the ``AttributeProto`` oneof).

ASTRA-sim reads the reserved attributes with exact oneof types (``comm_size`` must be an
``int64_val``, ``tensor_size`` a ``uint64_val``, ...): a value stored under another type is
silently ignored there. ``set_attr`` therefore writes reserved names with their exact type, and
``get_attr`` reads any numeric type so that traces from other writers still load.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from trainsim.chakra_et.schema import AttributeProto, GlobalMetadata, Node

__all__ = [
    "ATTR_KINDS",
    "RESERVED_ATTR_KINDS",
    "AttrValue",
    "attr_value",
    "attrs_dict",
    "get_attr",
    "make_attr",
    "set_attr",
]

AttrScalar = bool | int | float | str | bytes
AttrValue = AttrScalar | list[bool] | list[int] | list[float] | list[str] | list[bytes]

#: Every scalar kind of the oneof; ``<kind>_val`` is the scalar field, ``<kind>_list`` the list.
ATTR_KINDS: tuple[str, ...] = (
    "double",
    "float",
    "int32",
    "int64",
    "uint32",
    "uint64",
    "sint32",
    "sint64",
    "fixed32",
    "fixed64",
    "sfixed32",
    "sfixed64",
    "bool",
    "string",
    "bytes",
)

#: The attribute names Chakra reserves, with the exact oneof kind ASTRA-sim reads.
RESERVED_ATTR_KINDS: Mapping[str, str] = {
    "is_cpu_op": "bool",
    "num_ops": "int64",
    "tensor_size": "uint64",
    "comm_type": "int64",
    "comm_size": "int64",
    "comm_priority": "int32",
    "comm_src": "int32",
    "comm_dst": "int32",
    "comm_tag": "int32",
    "pg_name": "string",
}

_INT_RANGES: Mapping[str, tuple[int, int]] = {
    "int32": (-(2**31), 2**31 - 1),
    "sint32": (-(2**31), 2**31 - 1),
    "sfixed32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "sint64": (-(2**63), 2**63 - 1),
    "sfixed64": (-(2**63), 2**63 - 1),
    "uint32": (0, 2**32 - 1),
    "fixed32": (0, 2**32 - 1),
    "uint64": (0, 2**64 - 1),
    "fixed64": (0, 2**64 - 1),
}


def attr_value(attr: AttributeProto) -> AttrValue | None:
    """Return the Python value an attribute holds (a list for list kinds), None if unset."""
    field = attr.WhichOneof("value")
    if field is None:
        return None
    value = getattr(attr, field)
    if field.endswith("_list"):
        return list(value.values)
    result: AttrValue = value
    return result


def _infer_kind(value: object) -> tuple[str, bool]:
    """Choose the oneof kind for an untyped Python value: (kind, is_list)."""
    if isinstance(value, (list, tuple)):
        if not value:
            return "int64", True
        kind, _ = _infer_kind(value[0])
        return kind, True
    if isinstance(value, bool):
        return "bool", False
    if isinstance(value, int):
        return ("int64" if value < 2**63 else "uint64"), False
    if isinstance(value, float):
        return "double", False
    if isinstance(value, str):
        return "string", False
    if isinstance(value, bytes):
        return "bytes", False
    raise TypeError(f"attribute value of type {type(value).__name__} has no Chakra kind")


def make_attr(name: str, value: object, kind: str | None = None) -> AttributeProto:
    """Build an ``AttributeProto``; reserved names get their exact kind unless ``kind`` is given.

    ``kind`` is a scalar kind from ``ATTR_KINDS`` (``"int64"``) or a list kind (``"int64_list"``).
    Integers outside the kind's range raise ``ValueError`` naming the attribute.
    """
    is_list = isinstance(value, (list, tuple))
    if kind is None:
        reserved = RESERVED_ATTR_KINDS.get(name)
        kind, is_list = (reserved, is_list) if reserved is not None else _infer_kind(value)
    elif kind.endswith("_list"):
        kind, is_list = kind[: -len("_list")], True
    if kind not in ATTR_KINDS:
        raise ValueError(f"attribute {name!r}: unknown kind {kind!r} (allowed: {ATTR_KINDS})")
    values: Sequence[object] = list(value) if isinstance(value, (list, tuple)) else [value]
    bounds = _INT_RANGES.get(kind)
    if bounds is not None:
        for v in values:
            if not isinstance(v, int) or isinstance(v, bool) or not bounds[0] <= v <= bounds[1]:
                raise ValueError(f"attribute {name!r}: {v!r} does not fit {kind}")
    attr = AttributeProto(name=name)
    if is_list:
        getattr(attr, f"{kind}_list").values.extend(values)
    else:
        setattr(attr, f"{kind}_val", value)
    return attr


def set_attr(
    message: Node | GlobalMetadata, name: str, value: object, kind: str | None = None
) -> None:
    """Set attribute ``name`` on a node or metadata, replacing an existing one of that name."""
    new = make_attr(name, value, kind)
    for existing in message.attr:
        if existing.name == name:
            existing.CopyFrom(new)
            return
    message.attr.append(new)


def get_attr(
    message: Node | GlobalMetadata, name: str, default: AttrValue | None = None
) -> AttrValue | None:
    """Return the value of the first attribute called ``name``, or ``default``."""
    for attr in message.attr:
        if attr.name == name:
            value = attr_value(attr)
            return default if value is None else value
    return default


def attrs_dict(message: Node | GlobalMetadata | Iterable[AttributeProto]) -> dict[str, AttrValue]:
    """Return every set attribute as ``{name: value}`` (the first wins on duplicate names)."""
    attrs = message.attr if isinstance(message, (Node, GlobalMetadata)) else message
    out: dict[str, AttrValue] = {}
    for attr in attrs:
        value = attr_value(attr)
        if value is not None and attr.name not in out:
            out[attr.name] = value
    return out
