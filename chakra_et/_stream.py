"""Streaming read and write of ``.et`` files: varint-length-delimited protobuf messages.

A Chakra ``.et`` file is one ``GlobalMetadata`` message followed by one ``Node`` message per
node, each preceded by its length as a base-128 varint (what Chakra's ``encodeMessage`` and
ASTRA-sim's feeder use). Files whose name ends in ``.gz`` are written gzip-compressed; reading
detects gzip by its magic bytes whatever the name. The reader holds one buffer chunk at a time,
so files larger than memory stream.
"""

from __future__ import annotations

import gzip
import io
import os
from collections.abc import Iterable, Iterator
from itertools import chain
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Union, cast

from google.protobuf.message import DecodeError

from trainsim.chakra_et._errors import ETFormatError
from trainsim.chakra_et.schema import GlobalMetadata, Node

__all__ = [
    "MAX_MESSAGE_BYTES",
    "ETReader",
    "ETWriter",
    "Source",
    "encode_varint",
    "iter_batches",
    "open_binary",
]

#: Largest message the reader accepts; a length prefix above it is a corrupt file, not a node.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024

_CHUNK_BYTES = 4 * 1024 * 1024
# Nodes per yielded batch: large enough that the per-batch cost vanishes, small enough that a
# streaming reader keeps few messages alive (keeping many makes allocation and GC dominate).
_BATCH_NODES = 256
_GZIP_MAGIC = b"\x1f\x8b"

Source = Union[str, "os.PathLike[str]", bytes, BinaryIO]


def open_binary(source: Source) -> tuple[BinaryIO, str, bool]:
    """Open a path, bytes or binary stream for reading, transparently un-gzipping.

    Returns the stream, a name for messages, and whether the caller owns (must close) it.
    """
    if isinstance(source, bytes):
        raw: BinaryIO = io.BytesIO(source)
        name, owned = "<bytes>", True
    elif isinstance(source, (str, os.PathLike)):
        name = os.fspath(source)
        raw = open(name, "rb")  # noqa: SIM115 - closed by the reader
        owned = True
    else:
        raw, name, owned = source, getattr(source, "name", "<stream>"), False
        if not isinstance(name, str):
            name = "<stream>"
    if not raw.seekable():  # e.g. a pipe: buffer it so the gzip magic can be peeked
        raw, owned = io.BytesIO(raw.read()), True
    pos = raw.tell()
    head = raw.read(2)
    raw.seek(pos)
    if head == _GZIP_MAGIC:
        return cast(BinaryIO, gzip.GzipFile(fileobj=raw, mode="rb")), name, True
    return raw, name, owned


def _decode_prefix(
    buf: bytes, pos: int, eof: bool, base: int, source: str
) -> tuple[int, int] | None:
    """Decode the varint length prefix at ``buf[pos]``: (message size, payload start).

    Returns None when the buffer ends inside the prefix and more data may follow. Raises
    ``ETFormatError`` for a prefix longer than 10 bytes, a zero or oversize length, or a
    prefix cut short at the end of the data.
    """
    n = len(buf)
    size, shift, p = 0, 0, pos
    while True:
        if p >= n:
            if eof:
                raise ETFormatError(
                    "file ends inside a length prefix", source=source, offset=base + pos
                )
            return None
        b = buf[p]
        p += 1
        size |= (b & 0x7F) << shift
        if b < 0x80:
            break
        shift += 7
        if shift > 63:
            raise ETFormatError(
                "length prefix is longer than 10 bytes", source=source, offset=base + pos
            )
    if size == 0:
        raise ETFormatError("zero-length message", source=source, offset=base + pos)
    if size > MAX_MESSAGE_BYTES:
        raise ETFormatError(
            f"length prefix {size} exceeds the {MAX_MESSAGE_BYTES}-byte limit",
            source=source,
            offset=base + pos,
        )
    return size, p


def _parse_nodes(
    buf: bytes, pos: int, eof: bool, base: int, source: str, count: int, out: list[Node]
) -> int:
    """Parse up to ``_BATCH_NODES`` complete Node messages from ``buf[pos:]`` into ``out``.

    Returns the position after the last message parsed.

    This is the hot loop of every reader (see benchmarks/bench_et_io.py): one-byte length
    prefixes, which most nodes have, take the inline path.
    """
    n = len(buf)
    node_cls = Node
    parse = Node.ParseFromString  # unbound: skips a per-node attribute lookup on the message
    append = out.append
    remaining = _BATCH_NODES
    try:
        while pos < n and remaining:
            remaining -= 1
            b = buf[pos]
            if 0 < b < 0x80 and pos + 1 + b <= n:
                end = pos + 1 + b
                node = node_cls()
                parse(node, buf[pos + 1 : end])
                append(node)
                pos = end
                continue
            decoded = _decode_prefix(buf, pos, eof, base, source)
            if decoded is None:
                break
            size, p = decoded
            end = p + size
            if end > n:
                if eof:
                    raise ETFormatError(
                        f"message of {size} bytes is cut short after {n - p} bytes",
                        source=source,
                        offset=base + pos,
                    )
                break
            node = node_cls()
            parse(node, buf[p:end])
            append(node)
            pos = end
    except DecodeError as exc:
        index = count + len(out) + 1
        raise ETFormatError(
            f"message {index} (a Node) does not parse: {exc}", source=source, offset=base + pos
        ) from None
    return pos


def iter_batches(
    stream: BinaryIO, source: str = "<stream>"
) -> Iterator[GlobalMetadata | list[Node]]:
    """Parse a length-delimited ET stream: yield the ``GlobalMetadata``, then lists of ``Node``.

    Nodes come in one list per buffer chunk, so a caller can iterate them at C speed
    (``itertools.chain.from_iterable``) while memory stays bounded by the chunk size. Raises
    ``ETFormatError`` naming the byte offset (and message number) for a malformed length
    prefix, a zero-length or oversize message, a message cut short by the end of the data, or
    a message that does not parse.
    """
    buf = b""
    base = 0  # file offset of buf[0]
    pos = 0
    count = 0  # messages parsed so far, the metadata included
    eof = False
    try:
        while not eof:
            chunk = stream.read(_CHUNK_BYTES)
            eof = not chunk
            if chunk:
                buf = buf[pos:] + chunk
                base += pos
                pos = 0
            n = len(buf)
            if count == 0 and n:
                decoded = _decode_prefix(buf, pos, eof, base, source)
                if decoded is None or (decoded[0] + decoded[1] > n and not eof):
                    continue
                size, p = decoded
                if p + size > n:
                    raise ETFormatError(
                        f"message of {size} bytes is cut short after {n - p} bytes",
                        source=source,
                        offset=base + pos,
                    )
                meta = GlobalMetadata()
                try:
                    meta.ParseFromString(buf[p : p + size])
                except DecodeError as exc:
                    raise ETFormatError(
                        f"GlobalMetadata does not parse: {exc}", source=source, offset=base + pos
                    ) from None
                count, pos = 1, p + size
                yield meta
            while True:
                batch: list[Node] = []
                pos = _parse_nodes(buf, pos, eof, base, source, count - 1, batch)
                if not batch:
                    break
                count += len(batch)
                yield batch
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        if isinstance(exc, ETFormatError):
            raise
        raise ETFormatError(f"cannot read data: {exc}", source=source) from None


class ETReader:
    """Stream the nodes of an ``.et`` file without holding the whole graph in memory.

    >>> with ETReader("trace.0.et") as reader:          # doctest: +SKIP
    ...     print(reader.metadata.version)
    ...     total = sum(node.duration_micros for node in reader)
    """

    def __init__(self, source: Source) -> None:
        self._stream, self.source, self._owned = open_binary(source)
        self._batches = iter_batches(self._stream, self.source)
        try:
            first = next(self._batches, None)
        except ETFormatError:
            self.close()
            raise
        if not isinstance(first, GlobalMetadata):
            self.close()
            raise ETFormatError("empty file: no GlobalMetadata message", source=self.source)
        self.metadata = first

    def __iter__(self) -> Iterator[Node]:
        # chain.from_iterable walks each batch list in C: no Python frame per node.
        return chain.from_iterable(cast(Iterator[list[Node]], self._batches))

    def close(self) -> None:
        """Close the underlying file if this reader opened it."""
        if self._owned:
            self._stream.close()

    def __enter__(self) -> ETReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def encode_varint(value: int) -> bytes:
    """Encode a non-negative integer as a protobuf base-128 varint."""
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


class ETWriter:
    """Write an ``.et`` file message by message: the metadata first, then nodes.

    Output is gzip-compressed (with a zero timestamp, so equal graphs give equal bytes) when the
    path ends in ``.gz``.
    """

    def __init__(self, target: str | os.PathLike[str] | BinaryIO, metadata: GlobalMetadata) -> None:
        if isinstance(target, (str, os.PathLike)):
            path = Path(target)
            raw: BinaryIO = open(path, "wb")  # noqa: SIM115 - closed in close()
            self._owned = True
            if path.name.endswith(".gz"):
                self._raw: BinaryIO | None = raw
                self._out: BinaryIO = cast(
                    BinaryIO, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0)
                )
            else:
                self._raw, self._out = None, raw
        else:
            self._raw, self._out, self._owned = None, target, False
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self.nodes_written = 0
        self._write(metadata.SerializeToString())

    def _write(self, payload: bytes) -> None:
        self._pending.append(encode_varint(len(payload)))
        self._pending.append(payload)
        self._pending_bytes += len(payload)
        if self._pending_bytes >= _CHUNK_BYTES:
            self.flush()

    def write(self, node: Node) -> None:
        """Append one node."""
        self._write(node.SerializeToString())
        self.nodes_written += 1

    def write_all(self, nodes: Iterable[Node]) -> None:
        """Append every node of an iterable, in order."""
        for node in nodes:
            self.write(node)

    def flush(self) -> None:
        """Push buffered messages to the file."""
        if self._pending:
            self._out.write(b"".join(self._pending))
            self._pending.clear()
            self._pending_bytes = 0

    def close(self) -> None:
        """Flush and close the file if this writer opened it."""
        self.flush()
        if self._owned:
            self._out.close()
            if self._raw is not None:
                self._raw.close()

    def __enter__(self) -> ETWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
