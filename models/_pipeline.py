"""Pipeline schedules: the order in which a stage runs its forward and backward steps."""

from __future__ import annotations

__all__ = ["pipeline_schedule"]


def pipeline_schedule(
    num_stages: int, stage: int, num_micro_batches: int, num_chunks: int = 1
) -> list[tuple[str, int, int]]:
    """Order in which ``stage`` runs ``("fwd"|"bwd", micro_batch, chunk)`` steps.

    1F1B when ``num_chunks == 1``: ``p - stage - 1`` warm-up forwards, then one forward and one
    backward alternately, then the remaining backwards. Interleaved (Megatron-Core): forwards
    go through chunks in groups of ``p`` micro-batches (a shorter last group when ``p`` does
    not divide them), with ``2(p - stage - 1) + (v - 1)p`` warm-up forwards; backwards visit
    chunks in reverse.
    """
    p, m, v = num_stages, num_micro_batches, num_chunks
    total = m * v
    # Megatron-Core's schedule table (``get_schedule_table``): micro-batches in groups of
    # ``p``, each group through every chunk before the next; the last group takes what is
    # left, so the number of micro-batches need not be a multiple of ``p``.
    table: list[tuple[int, int]] = []
    for first in range(0, m, p):
        group = range(first, min(first + p, m))
        table.extend((mb, chunk) for chunk in range(v) for mb in group)

    def fwd(k: int) -> tuple[str, int, int]:
        mb, chunk = table[k]
        return ("fwd", mb, chunk)

    def bwd(k: int) -> tuple[str, int, int]:
        mb, chunk = table[k]
        return ("bwd", mb, v - 1 - chunk)

    warmup = p - stage - 1 if v == 1 else 2 * (p - stage - 1) + (v - 1) * p
    warmup = min(warmup, total)
    order = [fwd(k) for k in range(warmup)]
    f = warmup
    for b in range(total):
        if f < total:
            order.append(fwd(f))
            f += 1
        order.append(bwd(b))
    return order
