"""Whole-graph read/write of ``.et`` files and their JSON form (as ``chakra_jsonizer`` writes it).

The JSON form is the protobuf JSON mapping of each message (camelCase names, 64-bit integers as
strings, enums by name), the metadata first, written as concatenated objects like the official
jsonizer. Reading also accepts a JSON array of the same objects.
"""

from __future__ import annotations

import gc
import gzip
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from trainsim.chakra_et._errors import ETJSONError
from trainsim.chakra_et._graph import ETGraph
from trainsim.chakra_et._stream import ETReader, ETWriter, Source
from trainsim.chakra_et.schema import GlobalMetadata, Node

__all__ = ["from_json", "iter_nodes", "load", "load_json", "save", "save_json", "to_json"]

PathLike = str | os.PathLike[str]


def load(source: Source) -> ETGraph:
    """Read a whole ``.et`` (or ``.et.gz``) file into an ``ETGraph``."""
    # A million fresh messages would trigger many full garbage-collection passes that find
    # nothing to free (messages hold no cycles); pausing the collector halves load time.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        with ETReader(source) as reader:
            return ETGraph(reader.metadata, list(reader))
    finally:
        if was_enabled:
            gc.enable()


def iter_nodes(source: Source) -> Iterator[Node]:
    """Stream the nodes of an ``.et`` file one at a time (the metadata is skipped)."""
    with ETReader(source) as reader:
        yield from reader


def save(graph: ETGraph, path: PathLike) -> None:
    """Write a graph as an ``.et`` file (gzip when the name ends in ``.gz``)."""
    with ETWriter(path, graph.metadata) as writer:
        writer.write_all(graph.node_list)


def to_json(graph: ETGraph) -> str:
    """Serialize a graph as the official jsonizer does: concatenated indented JSON objects."""
    parts = [json_format.MessageToJson(graph.metadata)]
    parts.extend(json_format.MessageToJson(node) for node in graph.node_list)
    return "".join(parts)


def save_json(graph: ETGraph, path: PathLike) -> None:
    """Write ``to_json(graph)`` to a file (gzip when the name ends in ``.gz``)."""
    text = to_json(graph).encode()
    if os.fspath(path).endswith(".gz"):
        with (
            open(path, "wb") as raw,
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz,
        ):
            gz.write(text)
    else:
        Path(path).write_bytes(text)


def _split_objects(text: str) -> list[Any]:
    """Split a JSON array, or concatenated JSON values, into Python objects."""
    decoder = json.JSONDecoder()
    pos, n = 0, len(text)
    values: list[Any] = []
    while True:
        while pos < n and text[pos] in " \t\r\n":
            pos += 1
        if pos >= n:
            break
        try:
            value, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise ETJSONError(
                f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
            ) from None
        values.append(value)
    if len(values) == 1 and isinstance(values[0], list):
        return values[0]
    return values


def _foreign_trace(obj: Any) -> str | None:
    """What a JSON document is when it is a PyTorch trace rather than a Chakra ET dump."""
    if not isinstance(obj, dict):
        return None
    if "traceEvents" in obj:
        return "a Kineto (PyTorch profiler) trace"
    if "nodes" in obj and ("schema" in obj or "pid" in obj):
        return f"a PyTorch host execution trace (schema {obj.get('schema', '?')})"
    return None


def from_json(text: str) -> ETGraph:
    """Parse the JSON form back into a graph; errors name the object and node id."""
    objects = _split_objects(text)
    if not objects:
        raise ETJSONError("no JSON objects: expected the GlobalMetadata then one object per node")
    foreign = _foreign_trace(objects[0]) if len(objects) == 1 else None
    if foreign is not None:
        # Both are what users record with PyTorch; neither is a Chakra ET until converted.
        raise ETJSONError(
            f"this is {foreign}, not a Chakra ET: convert it first "
            "(trainsim convert pytorch, or chakra_et.convert_pytorch)"
        )
    for index, obj in enumerate(objects):
        if not isinstance(obj, dict):
            raise ETJSONError(f"object {index}: expected a JSON object, got {type(obj).__name__}")
    metadata = GlobalMetadata()
    try:
        json_format.ParseDict(objects[0], metadata)
    except json_format.ParseError as exc:
        raise ETJSONError(f"object 0 (GlobalMetadata): {exc}") from None
    graph = ETGraph(metadata)
    for index, obj in enumerate(objects[1:], start=1):
        node = Node()
        try:
            json_format.ParseDict(obj, node)
        except json_format.ParseError as exc:
            raise ETJSONError(f"object {index} (node id {obj.get('id', '?')}): {exc}") from None
        graph.add(node)
    return graph


def load_json(path: PathLike) -> ETGraph:
    """Read a JSON (or ``.json.gz``) ET dump into a graph."""
    try:
        with open(path, "rb") as raw:
            data = raw.read()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        text = data.decode("utf-8")
    except (gzip.BadGzipFile, EOFError, UnicodeDecodeError) as exc:
        raise ETJSONError(f"{os.fspath(path)}: cannot read JSON: {exc}") from None
    try:
        return from_json(text)
    except ETJSONError as exc:
        raise ETJSONError(f"{os.fspath(path)}: {exc}") from None
