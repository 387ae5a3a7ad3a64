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
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Union, cast

from google.protobuf.message import DecodeError

from chakra_et._errors import ETFormatError
from chakra_et.schema import GlobalMetadata, Node

__all__ = [
    "MAX_MESSAGE_BYTES",
    "ETReader",
    "ETWriter",
    "Source",
    "encode_varint",
    "iter_frames",
    "open_binary",
]

#: Largest message the reader accepts; a length prefix above it is a corrupt file, not a node.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024

_CHUNK_BYTES = 4 * 1024 * 1024
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


def iter_frames(stream: BinaryIO, source: str = "<stream>") -> Iterator[bytes]:
    """Yield the payload of each length-delimited message in ``stream``, in order.

    Raises ``ETFormatError`` naming the byte offset for a truncated or malformed length prefix,
    a zero-length or oversize message, or a message cut short by the end of the data.
    """
    buf = b""
    base = 0  # file offset of buf[0]
    pos = 0
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
            while pos < n:
                b = buf[pos]
                if b < 0x80:
                    size, p = b, pos + 1
                else:
                    size, shift, p = b & 0x7F, 7, pos + 1
                    while True:
                        if p >= n:
                            break
                        b = buf[p]
                        p += 1
                        size |= (b & 0x7F) << shift
                        if b < 0x80:
                            break
                        shift += 7
                        if shift > 63:
                            raise ETFormatError(
                                "length prefix is longer than 10 bytes",
                                source=source,
                                offset=base + pos,
                            )
                    if b >= 0x80 or p > n:  # ran out of bytes inside the varint
                        if eof:
                            raise ETFormatError(
                                "file ends inside a length prefix", source=source, offset=base + pos
                            )
                        break
                if size == 0:
                    raise ETFormatError("zero-length message", source=source, offset=base + pos)
                if size > MAX_MESSAGE_BYTES:
                    raise ETFormatError(
                        f"length prefix {size} exceeds the {MAX_MESSAGE_BYTES}-byte limit",
                        source=source,
                        offset=base + pos,
                    )
                end = p + size
                if end > n:
                    if eof:
                        raise ETFormatError(
                            f"message of {size} bytes is cut short after {n - p} bytes",
                            source=source,
                            offset=base + pos,
                        )
                    break
                yield buf[p:end]
                pos = end
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
        self._frames = iter_frames(self._stream, self.source)
        first = next(self._frames, None)
        if first is None:
            self.close()
            raise ETFormatError("empty file: no GlobalMetadata message", source=self.source)
        self.metadata = GlobalMetadata()
        try:
            self.metadata.ParseFromString(first)
        except DecodeError as exc:
            self.close()
            raise ETFormatError(
                f"GlobalMetadata does not parse: {exc}", source=self.source, offset=0
            ) from None
        self.nodes_read = 0

    def __iter__(self) -> Iterator[Node]:
        for payload in self._frames:
            node = Node()
            try:
                node.ParseFromString(payload)
            except DecodeError as exc:
                raise ETFormatError(
                    f"message {self.nodes_read + 1} (a Node) does not parse: {exc}",
                    source=self.source,
                ) from None
            self.nodes_read += 1
            yield node

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
