"""TACOS greedy link-chunk matching: one All-Gather over a time-expanded network.

The network is expanded event by event (the distinct chunk-arrival times). At each event
every free link tries to carry a chunk its destination still needs and its source holds;
links into one destination are tried fastest first (ties at random) and each picks a candidate
chunk, so every event's matching is maximal. Among candidates, a link prefers the chunks that
fewest other in-neighbours of its destination hold (ties at random): those other links cannot
deliver them, so they stay free for the rest (on the reference tori this often reaches the
latency-inclusive optimum where a uniform pick, the reference code's, does not). A link
carries one chunk at a time and stays busy until the chunk lands. With heterogeneous links
an otherwise idle link may race a chunk already on its way over a slower one; whichever
lands second is swapped for another chunk its sender held when it started and the receiver
still needs (the replacement rule), or dropped.

A Reduce-Scatter is this All-Gather run backwards in time (``time_reversed``). The executor
serves each link in the order its transfers start; backwards, a transfer starts when the
gather's ends, so over a relayed link a later reservation of a port must also land no earlier
than every earlier transfer through that port. Otherwise a transfer with a slow first hop
starts first when reversed, takes the shared port first and delays the others.

Chunk sets are bitmaps packed 64 to a word. Up to ``EXACT_LIMIT`` member-chunk pairs the
in-neighbour holder counts are kept exactly; above it they are approximated by bitwise
"held by at least two / three in-neighbours" masks, so a matching round costs a few numpy
passes over ``members x chunks / 64`` words.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from ._errors import AlgorithmError, ConfigError
from ._local import FloatArray, IntArray
from ._tacos_network import LinkGraph

__all__ = ["EXACT_LIMIT", "GatherRun", "gather_once"]

#: Largest members x chunks for which chunk choice uses exact in-neighbour holder counts.
EXACT_LIMIT = 1 << 17

U64 = npt.NDArray[np.uint64]
_Array = TypeVar("_Array", IntArray, FloatArray)
_ONE = np.uint64(1)


@dataclass(frozen=True, eq=False)
class GatherRun:
    """Timed transfers of one synthesized All-Gather, in member indices.

    Transfer ``k`` sends chunk ``chunk[k]`` over virtual link ``link[k]`` from ``start_us[k]``
    to ``end_us[k]``; ``dep[k]`` is the transfer that brought that chunk to the sender
    (``-1`` at the chunk's owner). Chunk ``c`` is owned by member ``c // chunks_per_npu``.
    ``replaced``/``dropped`` count the late duplicates the replacement rule swapped or dropped.
    """

    link: IntArray
    chunk: IntArray
    start_us: FloatArray
    end_us: FloatArray
    dep: IntArray
    time_us: float
    chunks_per_npu: int
    replaced: int = 0
    dropped: int = 0


def gather_once(
    graph: LinkGraph,
    chunk_bytes: float,
    chunks_per_npu: int,
    rng: np.random.Generator,
    *,
    time_reversed: bool = False,
) -> GatherRun:
    """Synthesize one All-Gather trial: every member ends holding every member's chunks.

    With ``time_reversed`` the run is meant to be executed backwards (Reduce-Scatter on the
    transposed graph): transfers sharing a port also land in the order they use it.
    """
    if chunks_per_npu < 1:
        raise ConfigError(f"chunks_per_npu must be >= 1, got {chunks_per_npu}")
    if graph.num_members <= 1:
        empty = np.zeros(0, dtype=np.int64)
        return GatherRun(empty, empty, np.zeros(0), np.zeros(0), empty, 0.0, chunks_per_npu)
    hop_time = graph.hop_time_us(chunk_bytes)
    if np.any(hop_time.sum(axis=1) <= 0):
        raise ConfigError(
            f"every link needs a positive chunk time; chunk_bytes={chunk_bytes} gives "
            "0 us on a zero-latency link"
        )
    return _Synthesis(graph, hop_time, chunks_per_npu, rng, time_reversed).run()


def _padded_table(keys: IntArray, n: int) -> IntArray:
    """Row ``i`` lists the positions ``j`` with ``keys[j] == i`` (``-1`` pads)."""
    order = np.argsort(keys, kind="stable")
    counts = np.bincount(keys, minlength=n)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    table = np.full((n, max(int(counts.max()), 1)), -1, dtype=np.int64)
    table[keys[order], np.arange(keys.size) - first[keys[order]]] = order
    return table


def _bits(chunks: IntArray) -> U64:
    out: U64 = _ONE << (chunks % 64).astype(np.uint64)
    return out


class _Synthesis:
    """State of one trial: holdings, link occupancy, transfers so far."""

    def __init__(
        self,
        graph: LinkGraph,
        hop_time: FloatArray,
        cpn: int,
        rng: np.random.Generator,
        time_reversed: bool = False,
    ) -> None:
        m = graph.num_members
        self.graph, self.cpn, self.rng = graph, cpn, rng
        # A hop of a relayed link starts when the previous hop has delivered the chunk.
        self.hop_end = np.cumsum(hop_time, axis=1)
        self.hop_start = self.hop_end - hop_time
        self.link_time = link_time = self.hop_end[:, -1].copy()
        self.k_chunks = k = m * cpn
        self.words = (k + 63) // 64
        self.relayed = graph.relayed
        self.pad = graph.num_physical
        self.hops = np.where(graph.hops >= 0, graph.hops, self.pad)
        self.phys_free = np.zeros(self.pad + 1)
        self.phys_free[self.pad] = -np.inf
        # Run backwards, a port's transfers start in the order they land here: the latest
        # landing of each port's transfers so far bounds when the next one may land.
        self.port_landed: FloatArray | None = None
        if time_reversed and self.relayed:
            self.port_landed = np.full(self.pad + 1, -np.inf)
        chunk_ids = np.arange(k, dtype=np.int64)
        self.held = np.zeros((m, self.words), dtype=np.uint64)
        np.bitwise_or.at(self.held, (chunk_ids // cpn, chunk_ids // 64), _bits(chunk_ids))
        self.sent = np.zeros((m, self.words), dtype=np.uint64)
        self.via = np.full((m, k), -1, dtype=np.int64)
        hetero = bool(np.ptp(link_time) > 1e-9 * float(link_time.max()))
        self.pending_end = np.full((m, k), np.inf) if hetero else None
        self.remaining = m * (k - cpn)
        # Duplicates only arise where links differ in speed.
        self.log = _Log(self.remaining + (self.remaining // 8 if hetero else 0))
        self.inflight = np.zeros(0, dtype=np.int64)
        self.in_links = _padded_table(graph.dst, m)
        self.out_links = _padded_table(graph.src, m)
        speed = np.unique(np.round(link_time, 9), return_inverse=True)[1].reshape(-1)
        safe = np.maximum(self.in_links, 0)
        self.rank_key = np.where(self.in_links >= 0, speed[safe], np.inf)
        # Holders of each chunk among each member's in-neighbours: exact counts when small.
        self.counts: npt.NDArray[np.int32] | None = None
        if m * k <= EXACT_LIMIT:
            self.counts = np.zeros((m, k), dtype=np.int32)
            owned = np.arange(cpn, dtype=np.int64)[None, :] + graph.src[:, None] * cpn
            np.add.at(self.counts, (np.repeat(graph.dst, cpn), owned.reshape(-1)), 1)
        self.twice = self.thrice = self.held

    def run(self) -> GatherRun:
        """Expand the network event by event until every member holds every chunk."""
        now = 0.0
        while self.remaining > 0:
            self._match(now)
            if self.pending_end is not None:
                self._race_idle_links(now)
            if self.inflight.size == 0:
                raise AlgorithmError(
                    f"synthesis stalled at {now:.3f} us with {self.remaining} chunks owed"
                )
            ends = self.log.end[self.inflight]
            upcoming = float(ends.min())
            if self.relayed:
                # A switch port frees up before the chunk lands: expand the network there too.
                later = self.phys_free[self.phys_free > now + 1e-9 * max(1.0, now)]
                upcoming = min(upcoming, float(later.min())) if later.size else upcoming
            now = upcoming
            landing = np.sort(self.inflight[ends <= now + 1e-9 * max(1.0, now)])
            self.inflight = np.setdiff1d(self.inflight, landing, assume_unique=True)
            self._land(landing)
        # Whatever is still on its way duplicates a delivered chunk: it is dropped.
        self.log.alive[self.inflight] = False
        self.log.dropped += int(self.inflight.size)
        return self.log.finish(self.cpn)

    def _free_links(self, now: float) -> npt.NDArray[np.bool_]:
        """Links each of whose ports is free by the time the chunk reaches it."""
        tol = 1e-9 * max(1.0, now)
        slack = self.phys_free[self.hops] - self.hop_start
        free: npt.NDArray[np.bool_] = slack.max(axis=1) <= now + tol
        if self.port_landed is not None:
            landed = self.port_landed[self.hops].max(axis=1)
            free &= now + self.link_time >= landed - tol
        return free

    def _link_free(self, link: int, now: float) -> bool:
        """``_free_links`` for one link."""
        tol = 1e-9 * max(1.0, now)
        ports = self.hops[link]
        if float((self.phys_free[ports] - self.hop_start[link]).max()) > now + tol:
            return False
        if self.port_landed is not None:
            landed = float(self.port_landed[ports].max())
            return now + float(self.link_time[link]) >= landed - tol
        return True

    def _match(self, now: float) -> None:
        vfree = self._free_links(now)
        if self.counts is None:
            self._tiers()
        keys = self.rank_key + self.rng.random(self.rank_key.shape)
        ranked = np.take_along_axis(self.in_links, np.argsort(keys, axis=1), axis=1)
        for r in range(ranked.shape[1]):
            links = ranked[:, r]
            ok = links >= 0
            ok[ok] = vfree[links[ok]]
            rows = np.flatnonzero(ok)
            while rows.size:
                picked = self._pick(rows, links[rows])
                if picked is None:
                    break
                rows_m, links_m, chunks_m = picked
                self._send(now, rows_m, links_m, chunks_m)
                if not self.relayed:
                    vfree[links_m] = False
                    break
                # Links sharing a port with the ones just taken are no longer free.
                vfree = self._free_links(now)
                rest = np.setdiff1d(rows, rows_m, assume_unique=True)
                rows = rest[vfree[links[rest]]]

    def _tiers(self) -> None:
        """Bitwise "held by >= 2 / >= 3 in-neighbours" masks (the approximate counts)."""
        once = np.zeros_like(self.held)
        twice = np.zeros_like(self.held)
        thrice = np.zeros_like(self.held)
        src = self.graph.src
        for j in range(self.in_links.shape[1]):
            col = self.in_links[:, j]
            x = np.where((col >= 0)[:, None], self.held[src[np.maximum(col, 0)]], np.uint64(0))
            thrice |= twice & x
            twice |= once & x
            once |= x
        self.twice, self.thrice = twice, thrice

    def _pick(self, rows: IntArray, links: IntArray) -> tuple[IntArray, IntArray, IntArray] | None:
        """Each destination row takes one chunk over its given link, if it has a candidate."""
        cand = self.held[self.graph.src[links]] & ~(self.held[rows] | self.sent[rows])
        has = (cand != 0).any(axis=1)
        if not has.any():
            return None
        rows, links, cand = rows[has], links[has], cand[has]
        if self.counts is not None:
            bits = np.unpackbits(cand.view(np.uint8), axis=1, bitorder="little")
            bits = bits[:, : self.k_chunks].astype(bool)
            score = self.counts[rows] + self.rng.random(bits.shape)
            chunks = np.argmin(np.where(bits, score, np.inf), axis=1).astype(np.int64)
        else:
            chunks = self._pick_bits(cand, rows)
        if self.relayed:
            keep = self._claim_ports(links)
            rows, links, chunks = rows[keep], links[keep], chunks[keep]
        return rows, links, chunks

    def _pick_bits(self, cand: U64, rows: IntArray) -> IntArray:
        """A random chunk of the rarest tier, without unpacking the bitmaps."""
        alone = cand & ~self.twice[rows]
        pair = cand & ~self.thrice[rows]
        cand = np.where(
            (alone != 0).any(axis=1)[:, None],
            alone,
            np.where((pair != 0).any(axis=1)[:, None], pair, cand),
        )
        count = rows.size
        words = self.words
        nonzero = cand != 0
        if words == 1:
            word_at = np.zeros(count, dtype=np.int64)
        else:
            # The first candidate word at or after a random offset, wrapping round.
            offset = self.rng.integers(0, words, count)
            after = nonzero & (np.arange(words)[None, :] >= offset[:, None])
            word_at = np.where(
                after.any(axis=1), np.argmax(after, axis=1), np.argmax(nonzero, axis=1)
            )
        word = cand[np.arange(count), word_at]
        # Lowest set bit after a random rotation picks a random candidate of the word.
        turn = self.rng.integers(0, 64, count).astype(np.uint64)
        rotated = (word >> turn) | (word << ((np.uint64(64) - turn) % np.uint64(64)))
        lowest = rotated & (~rotated + _ONE)
        low_bit = np.log2(lowest.astype(np.float64)).astype(np.int64)
        out: IntArray = word_at * 64 + (low_bit + turn.astype(np.int64)) % 64
        return out

    def _claim_ports(self, links: IntArray) -> npt.NDArray[np.bool_]:
        """Keep relayed links that share no physical port, in random priority."""
        taken: set[int] = set()
        keep = np.zeros(links.size, dtype=bool)
        for i in self.rng.permutation(links.size).tolist():
            ports = [p for p in self.hops[links[i]].tolist() if p != self.pad]
            if not taken.intersection(ports):
                taken.update(ports)
                keep[i] = True
        return keep

    def _send(self, now: float, rows: IntArray, links: IntArray, chunks: IntArray) -> None:
        ends = now + self.link_time[links]
        tids = self.log.add(links, chunks, now, ends, self.via[self.graph.src[links], chunks])
        self.sent[rows, chunks // 64] |= _bits(chunks)
        self.phys_free[self.hops[links]] = now + self.hop_end[links]
        self.phys_free[self.pad] = -np.inf
        if self.port_landed is not None:
            ports = self.hops[links]
            np.maximum.at(self.port_landed, ports, np.broadcast_to(ends[:, None], ports.shape))
            self.port_landed[self.pad] = -np.inf
        if self.pending_end is not None:
            self.pending_end[rows, chunks] = np.minimum(self.pending_end[rows, chunks], ends)
        self.inflight = np.concatenate([self.inflight, tids])

    def _race_idle_links(self, now: float) -> None:
        """Let idle links race chunks already on their way, where they would land first."""
        assert self.pending_end is not None
        idle = np.flatnonzero(self._free_links(now))
        if idle.size == 0:
            return
        s, d = self.graph.src[idle], self.graph.dst[idle]
        cand = self.held[s] & self.sent[d] & ~self.held[d]
        for i in np.flatnonzero((cand != 0).any(axis=1)).tolist():
            link = int(idle[i])
            if not self._link_free(link, now):
                continue  # a port of this relayed link was taken in this pass
            bits = np.unpackbits(cand[i].view(np.uint8), bitorder="little")
            chunks = np.flatnonzero(bits[: self.k_chunks])
            dest = int(d[i])
            arrive = now + float(self.link_time[link])
            gain = self.pending_end[dest, chunks] - arrive
            best = int(np.argmax(gain))
            if gain[best] <= 1e-9 * max(1.0, arrive):
                continue
            chunk = np.asarray([chunks[best]], dtype=np.int64)
            self._send(now, np.asarray([dest]), np.asarray([link]), chunk)

    def _land(self, landing: IntArray) -> None:
        """Deliver the transfers landing now; apply the replacement rule to late duplicates."""
        log = self.log
        dest = self.graph.dst[log.link[landing]]
        chunks = log.chunk[landing]
        have = (self.held[dest, chunks // 64] >> (chunks % 64).astype(np.uint64)) & _ONE
        _, first = np.unique(dest * self.k_chunks + chunks, return_index=True)
        fresh = np.zeros(landing.size, dtype=bool)
        fresh[first] = True
        fresh &= have == 0
        self._hold(dest[fresh], chunks[fresh], landing[fresh])
        for k in np.flatnonzero(~fresh).tolist():
            self._replace(int(landing[k]))

    def _hold(self, dest: IntArray, chunks: IntArray, tids: IntArray) -> None:
        np.bitwise_or.at(self.held, (dest, chunks // 64), _bits(chunks))
        self.via[dest, chunks] = tids
        self.remaining -= int(dest.size)
        if self.counts is not None and dest.size:
            outs = self.out_links[dest]
            valid = outs >= 0
            targets = self.graph.dst[np.maximum(outs, 0)][valid]
            np.add.at(
                self.counts, (targets, np.broadcast_to(chunks[:, None], outs.shape)[valid]), 1
            )

    def _replace(self, tid: int) -> None:
        """Swap a late duplicate for a chunk its sender held at the start and the receiver lacks."""
        log = self.log
        link = int(log.link[tid])
        s, d = int(self.graph.src[link]), int(self.graph.dst[link])
        cand = self.held[s] & ~(self.held[d] | self.sent[d])
        chunks = np.flatnonzero(
            np.unpackbits(cand.view(np.uint8), bitorder="little")[: self.k_chunks]
        )
        if chunks.size:
            origin = self.via[s, chunks]
            since = np.where(origin >= 0, log.end[np.maximum(origin, 0)], 0.0)
            start = float(log.start[tid])
            chunks = chunks[since <= start + 1e-9 * max(1.0, start)]
        if chunks.size == 0:
            log.alive[tid] = False
            log.dropped += 1
            return
        log.replaced += 1
        chunk = int(self.rng.choice(chunks))
        log.chunk[tid] = chunk
        log.dep[tid] = self.via[s, chunk]
        self.sent[d, chunk // 64] |= _ONE << np.uint64(chunk % 64)
        self._hold(np.asarray([d]), np.asarray([chunk]), np.asarray([tid]))


class _Log:
    """Growable columns of the transfers made so far."""

    def __init__(self, capacity: int) -> None:
        cap = max(capacity, 16)
        self.link = np.zeros(cap, dtype=np.int64)
        self.chunk = np.zeros(cap, dtype=np.int64)
        self.start = np.zeros(cap)
        self.end = np.zeros(cap)
        self.dep = np.zeros(cap, dtype=np.int64)
        self.alive = np.ones(cap, dtype=bool)
        self.size = 0
        self.replaced = self.dropped = 0

    def add(
        self, link: IntArray, chunk: IntArray, start: float, end: FloatArray, dep: IntArray
    ) -> IntArray:
        n = int(link.size)
        if self.size + n > self.link.size:
            grow = max(self.link.size * 2, self.size + n)
            self.link = self._grown(self.link, grow)
            self.chunk = self._grown(self.chunk, grow)
            self.start = self._grown(self.start, grow)
            self.end = self._grown(self.end, grow)
            self.dep = self._grown(self.dep, grow)
            alive = np.ones(grow, dtype=bool)
            alive[: self.size] = self.alive[: self.size]
            self.alive = alive
        lo, hi = self.size, self.size + n
        self.link[lo:hi] = link
        self.chunk[lo:hi] = chunk
        self.start[lo:hi] = start
        self.end[lo:hi] = end
        self.dep[lo:hi] = dep
        self.size = hi
        return np.arange(lo, hi, dtype=np.int64)

    def _grown(self, old: _Array, size: int) -> _Array:
        new = np.zeros_like(old, shape=(size,))
        new[: self.size] = old[: self.size]
        return new

    def finish(self, cpn: int) -> GatherRun:
        """The live transfers, renumbered."""
        n = self.size
        keep = np.flatnonzero(self.alive[:n])
        new_id = np.full(n + 1, -1, dtype=np.int64)
        new_id[keep] = np.arange(keep.size)
        end = self.end[:n][keep]
        return GatherRun(
            link=self.link[:n][keep].copy(),
            chunk=self.chunk[:n][keep].copy(),
            start_us=self.start[:n][keep].copy(),
            end_us=end.copy(),
            dep=new_id[self.dep[:n][keep]],
            time_us=float(end.max()) if end.size else 0.0,
            chunks_per_npu=cpn,
            replaced=self.replaced,
            dropped=self.dropped,
        )
