"""Per-operation rooflines of one compute node, so that a layer node costs each of its ops.

A node standing for several operations (a whole transformer layer at layer granularity) would
hide memory-bound work behind its GEMMs if costed as one roofline. Generated nodes therefore
carry ``roofline_ops``, an int64 list of six entries per operation:
``[class, flops, bytes, m, n, k]``, class 0 for memory-bound (vector) work, 1 for a GEMM of
shape ``(m, n, k)``, 2 for fused attention's forward and 3 for its backward, whose
``(m, n, k)`` are the query length, key length and head dimension (zeros when unknown; a
device with measured attention rates looks them up there). ``flops`` are those the kernel
executes: fused attention in a causal decoder skips the masked half of the scores, so it
carries half the nominal FLOPs (model FLOPs still count all of them, as Megatron-LM's formula
does).

A single-operation node may also carry ``comm_sms``: the SMs that communication kernels running
beside it hold, which it cannot compute on (``DeviceSpec.op_time_us``). With ``comm_beside``,
the id of that communication node, it loses them only while that node runs (the engine
stretches it once the collective's time is known); without, for its whole run (a reserved
margin).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from trainsim.models._device import DeviceSpec

__all__ = [
    "COMM_BESIDE_ATTR",
    "COMM_SMS_ATTR",
    "OP_ATTENTION",
    "OP_ATTENTION_BWD",
    "OP_GEMM",
    "OP_VECTOR",
    "ROOFLINE_ATTR",
    "encode_roofline",
    "roofline_time_us",
]

ROOFLINE_ATTR = "roofline_ops"
COMM_SMS_ATTR = "comm_sms"
COMM_BESIDE_ATTR = "comm_beside"
OP_VECTOR, OP_GEMM, OP_ATTENTION, OP_ATTENTION_BWD = 0, 1, 2, 3
_CLASSES = {
    "vector": OP_VECTOR,
    "gemm": OP_GEMM,
    "attention": OP_ATTENTION,
    "attention_bwd": OP_ATTENTION_BWD,
}
_FIELDS = 6


def encode_roofline(
    ops: Iterable[tuple[str, int, int, tuple[int, int, int] | None]],
) -> tuple[int, ...]:
    """Flatten ``(kind, nominal flops, bytes, shape)`` per op into ``roofline_ops``."""
    out: list[int] = []
    for kind, flops, size, shape in ops:
        code = _CLASSES[kind]
        if code in (OP_ATTENTION, OP_ATTENTION_BWD):
            flops //= 2  # causal mask: the fused kernel skips the upper triangle
        m, n, k = shape if shape is not None else (0, 0, 0)
        out.extend((code, flops, size, m, n, k))
    return tuple(out)


def roofline_time_us(
    device: DeviceSpec, entries: Sequence[int], dtype: str = "bf16", *, comm_sms: int = 0
) -> float:
    """Sum of each encoded op's roofline time on ``device`` (microseconds), each computing on
    the SMs that ``comm_sms`` held by communication beside the node leave."""
    if len(entries) % _FIELDS:
        raise ValueError(f"{ROOFLINE_ATTR} must hold {_FIELDS} integers per op, got {len(entries)}")
    total = 0.0
    for i in range(0, len(entries), _FIELDS):
        code, flops, size, m, n, k = entries[i : i + _FIELDS]
        if code == OP_GEMM and m and n and k:
            total += device.op_time_us(flops, size, dtype, gemm_shape=(m, n, k), comm_sms=comm_sms)
        elif code in (OP_ATTENTION, OP_ATTENTION_BWD):
            total += device.op_time_us(
                flops,
                size,
                dtype,
                attention=True,
                attention_shape=(n, k) if n and k else None,
                backward=code == OP_ATTENTION_BWD,
                comm_sms=comm_sms,
            )
        elif code in (OP_VECTOR, OP_GEMM):
            total += device.op_time_us(flops, size, dtype, comm_sms=comm_sms)
        else:
            raise ValueError(f"{ROOFLINE_ATTR}: unknown op class {code}")
    return total
