"""Pipeline schedules: the order in which a stage runs its forward and backward steps."""

from __future__ import annotations

__all__ = ["pipeline_schedule"]


def pipeline_schedule(
    num_stages: int, stage: int, num_micro_batches: int, num_chunks: int = 1
) -> list[tuple[str, int, int]]:
    """Order in which ``stage`` runs ``("fwd"|"bwd", micro_batch, chunk)`` steps.

    1F1B when ``num_chunks == 1``: ``p - stage - 1`` warm-up forwards, then one forward and one
    backward alternately, then the remaining backwards. Interleaved (Megatron-LM): forwards go
    through chunks in groups of ``p`` micro-batches, with ``2(p - stage - 1) + (v - 1)p``
    warm-up forwards; backwards visit chunks in reverse.
    """
    p, m, v = num_stages, num_micro_batches, num_chunks
    total = m * v

    def fwd(k: int) -> tuple[str, int, int]:
        if v == 1:
            return ("fwd", k, 0)
        group, within = divmod(k, p * v)
        return ("fwd", group * p + within % p, (within // p) % v)

    def bwd(k: int) -> tuple[str, int, int]:
        if v == 1:
            return ("bwd", k, 0)
        group, within = divmod(k, p * v)
        return ("bwd", group * p + within % p, v - 1 - (within // p) % v)

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
