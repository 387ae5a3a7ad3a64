"""Export of synthesized schedules for MSCCL-style runtimes, as JSON or MSCCL-XML.

Every GPU gets one threadblock per peer it receives from and one per peer it sends to; each
threadblock lists its steps in time order with chunk ids. A send waits for the receive that
brought its chunk (reduce-scatter: for every partial sum flowing into it); MSCCL-XML allows
one dependency per step, so extra ones become ``nop`` steps just before the send. Receives
that reduce into the same chunk of one GPU are chained so they never race.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

from ._errors import ConfigError
from ._ops import CollectiveOp
from ._tacos_schedule import TacosResult

__all__ = ["to_msccl_json", "to_msccl_xml", "write_msccl"]

_COLL = {
    CollectiveOp.ALL_GATHER: "allgather",
    CollectiveOp.REDUCE_SCATTER: "reducescatter",
    CollectiveOp.ALL_REDUCE: "allreduce",
}


@dataclass
class _Step:
    kind: str
    chunk: int
    peer: int
    start_us: float
    end_us: float
    deps: list[tuple[int, int]] = field(default_factory=list)
    has_dep: bool = False


@dataclass
class _Block:
    send: int
    recv: int
    steps: list[_Step] = field(default_factory=list)


def _blocks(result: TacosResult) -> list[list[_Block]]:
    """Per GPU, its threadblocks with ordered steps and (threadblock, step) dependencies."""
    sched = result.schedule
    gpu = {npu: i for i, npu in enumerate(sched.ranks)}
    n = len(sched.ranks)
    gpus: list[list[_Block]] = [[] for _ in range(n)]
    index: dict[tuple[int, str, int], int] = {}

    def block(g: int, kind: str, peer: int) -> int:
        key = (g, kind, peer)
        if key not in index:
            index[key] = len(gpus[g])
            gpus[g].append(_Block(peer if kind == "send" else -1, peer if kind == "recv" else -1))
        return index[key]

    recv_at: list[tuple[int, int, int]] = []
    last_reduce: dict[tuple[int, int], tuple[int, int]] = {}
    for t in range(sched.num_transfers):
        s, d = gpu[int(sched.src[t])], gpu[int(sched.dst[t])]
        chunk = int(sched.chunk_lo[t])
        start, end = float(result.start_us[t]), float(result.end_us[t])
        send_deps = [recv_at[int(k)] for k in sched.deps[t] if k >= 0]
        sb = block(s, "send", d)
        gpus[s][sb].steps.append(
            _Step("s", chunk, d, start, end, [(b, i) for _, b, i in send_deps])
        )
        for g, b, i in send_deps:
            gpus[g][b].steps[i].has_dep = True
        rb = block(d, "recv", s)
        reduce = bool(sched.reduce[t])
        step = _Step("rrc" if reduce else "r", chunk, s, start, end)
        if reduce and (d, chunk) in last_reduce:
            pb, pi = last_reduce[(d, chunk)]
            step.deps.append((pb, pi))
            gpus[d][pb].steps[pi].has_dep = True
        gpus[d][rb].steps.append(step)
        recv_at.append((d, rb, len(gpus[d][rb].steps) - 1))
        if reduce:
            last_reduce[(d, chunk)] = (rb, len(gpus[d][rb].steps) - 1)
    return gpus


def to_msccl_json(result: TacosResult) -> dict[str, object]:
    """The schedule as plain data: per GPU, threadblocks of ordered steps with dependencies.

    >>> from trainsim.topology import ring
    >>> from trainsim.collectives import synthesize_tacos
    >>> doc = to_msccl_json(synthesize_tacos("all_gather", 1024, ring(4)))
    >>> blocks = doc["gpus"][0]["threadblocks"]
    >>> doc["collective"], len(doc["gpus"]), sorted({s["type"] for b in blocks for s in b["steps"]})
    ('allgather', 4, ['r', 's'])
    """
    sched = result.schedule
    gpus = _blocks(result)
    return {
        "name": "tacos",
        "collective": _COLL[sched.op],
        "ngpus": len(sched.ranks),
        "npus": list(sched.ranks),
        "nchunks": sched.num_chunks,
        "chunks_per_npu": result.chunks_per_npu,
        "chunk_bytes": result.chunk_bytes,
        "time_us": result.time_us,
        "gpus": [
            {
                "id": g,
                "threadblocks": [
                    {
                        "id": b,
                        "send": blk.send,
                        "recv": blk.recv,
                        "steps": [
                            {
                                "s": i,
                                "type": st.kind,
                                "chunk": st.chunk,
                                "peer": st.peer,
                                "start_us": st.start_us,
                                "end_us": st.end_us,
                                "deps": [list(x) for x in st.deps],
                                "hasdep": st.has_dep,
                            }
                            for i, st in enumerate(blk.steps)
                        ],
                    }
                    for b, blk in enumerate(blocks)
                ],
            }
            for g, blocks in enumerate(gpus)
        ],
    }


def to_msccl_xml(result: TacosResult) -> str:
    """The schedule as MSCCL-XML (``<algo>``/``<gpu>``/``<tb>``/``<step>``)."""
    sched = result.schedule
    op = sched.op
    n = len(sched.ranks)
    k = sched.num_chunks
    buf = "o" if op is CollectiveOp.ALL_GATHER else "i"
    algo = ElementTree.Element(
        "algo",
        name=f"tacos_{_COLL[op]}",
        proto="Simple",
        nchannels="1",
        nchunksperloop=str(k),
        ngpus=str(n),
        coll=_COLL[op],
        inplace="1",
    )
    out_chunks = result.chunks_per_npu if op is CollectiveOp.REDUCE_SCATTER else k
    in_chunks = result.chunks_per_npu if op is CollectiveOp.ALL_GATHER else k
    for g, blocks in enumerate(_blocks(result)):
        gpu = ElementTree.SubElement(
            algo, "gpu", id=str(g), i_chunks=str(in_chunks), o_chunks=str(out_chunks), s_chunks="0"
        )
        # nop steps shift the indices of the steps after them: renumber first.
        numbers: list[list[int]] = []
        for blk in blocks:
            row, pos = [], 0
            for st in blk.steps:
                pos += max(len(st.deps) - 1, 0)
                row.append(pos)
                pos += 1
            numbers.append(row)
        for b, blk in enumerate(blocks):
            tb = ElementTree.SubElement(
                gpu, "tb", id=str(b), send=str(blk.send), recv=str(blk.recv), chan="0"
            )
            s = 0
            for st in blk.steps:
                deps = [(db, numbers[db][di]) for db, di in st.deps]
                for db, di in deps[:-1]:
                    _step(tb, s, "nop", 0, buf, db, di, False)
                    s += 1
                last = deps[-1] if deps else (-1, -1)
                _step(tb, s, st.kind, st.chunk, buf, last[0], last[1], st.has_dep)
                s += 1
    ElementTree.indent(algo)
    return ElementTree.tostring(algo, encoding="unicode") + "\n"


def _step(
    tb: ElementTree.Element,
    s: int,
    kind: str,
    chunk: int,
    buf: str,
    depid: int,
    dep: int,
    has_dep: bool,
) -> None:
    ElementTree.SubElement(
        tb,
        "step",
        s=str(s),
        type=kind,
        srcbuf=buf,
        srcoff=str(chunk),
        dstbuf=buf,
        dstoff=str(chunk),
        cnt="1" if kind != "nop" else "0",
        depid=str(depid),
        deps=str(dep),
        hasdep="1" if has_dep else "0",
    )


def write_msccl(result: TacosResult, path: str | Path) -> Path:
    """Write the export to ``path``: MSCCL-XML for ``.xml``, JSON for ``.json``."""
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix == ".xml":
        target.write_text(to_msccl_xml(result))
    elif suffix == ".json":
        target.write_text(json.dumps(to_msccl_json(result), indent=1) + "\n")
    else:
        raise ConfigError(f"{target}: unknown export format {suffix!r} (use .json or .xml)")
    return target
