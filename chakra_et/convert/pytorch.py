"""Converting PyTorch host execution traces (+ Kineto device traces) into Chakra ETs.

>>> from trainsim.chakra_et.convert import convert_pytorch
>>> result = convert_pytorch("host.0.json.gz", "device.0.json.gz")  # doctest: +SKIP
>>> print(result.report.format())  # doctest: +SKIP
"""

from __future__ import annotations

import gc
import gzip
import os
import re
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from trainsim.chakra_et._attrs import set_attr
from trainsim.chakra_et._graph import ETGraph, node_type_name
from trainsim.chakra_et._io import save
from trainsim.chakra_et._validate import validate
from trainsim.chakra_et.convert._backend_spans import absorb_worker_ops, pair_backend_ops
from trainsim.chakra_et.convert._build import BuildOptions, build_graph
from trainsim.chakra_et.convert._errors import ConversionWarning, TraceConversionError
from trainsim.chakra_et.convert._gloo_threads import GroupSequences, collective_sequences
from trainsim.chakra_et.convert._host_et import HostTrace, load_host_trace
from trainsim.chakra_et.convert._kineto import KinetoTrace, load_kineto_trace
from trainsim.chakra_et.convert._link import HostKinetoLink, link_traces
from trainsim.chakra_et.convert._process_groups import read_process_groups
from trainsim.chakra_et.convert._report import ConversionReport
from trainsim.chakra_et.convert._units import Unit, select_units

__all__ = [
    "MIN_MATCH_RATIO",
    "Conversion",
    "convert_directory",
    "convert_pytorch",
    "convert_traces",
    "find_rank_files",
]

#: Below this share of host ops found in Kineto, the two files are from different runs.
MIN_MATCH_RATIO = 0.5
#: Below this share, Kineto is still used but the report warns.
WARN_MATCH_RATIO = 0.9

PathLike = str | os.PathLike[str]


@dataclass
class Conversion:
    """The result of converting one rank: the ET graph and its report."""

    graph: ETGraph
    report: ConversionReport


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: converting builds millions of acyclic objects,
    and every full collection would walk all of them for nothing (5x slower overall)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def convert_traces(
    host: HostTrace,
    kineto: KinetoTrace | None = None,
    *,
    rank: int | None = None,
    world_size: int | None = None,
    host_gaps: bool = True,
    check: bool = True,
    known_sequences: GroupSequences | None = None,
) -> Conversion:
    """Convert parsed traces (see ``convert_pytorch`` for the options)."""
    with _gc_paused():
        return _convert(host, kineto, rank, world_size, host_gaps, check, known_sequences)


def _convert(
    host: HostTrace,
    kineto: KinetoTrace | None,
    rank: int | None,
    world_size: int | None,
    host_gaps: bool,
    check: bool,
    known_sequences: GroupSequences | None = None,
) -> Conversion:
    report = ConversionReport(host.source, kineto.source if kineto is not None else None)
    report.schema = host.schema
    report.host_nodes_in = len(host.ops)
    link: HostKinetoLink | None = None
    if kineto is not None:
        link = link_traces(host, kineto)
        ratio = link.match_ratio
        report.kineto_match_ratio = round(ratio, 4)
        if ratio < MIN_MATCH_RATIO:
            message = (
                f"{host.source} and {kineto.source} look like different runs: only "
                f"{ratio:.1%} of host ops match a Kineto span ({link.method}); "
                "Kineto timing is ignored"
            )
            report.warnings.append(message)
            warnings.warn(message, ConversionWarning, stacklevel=2)
            link = None
        elif ratio < WARN_MATCH_RATIO:
            message = (
                f"only {ratio:.1%} of host ops in {host.source} match a Kineto span in "
                f"{kineto.source} ({link.method}); unmatched ops use host timing"
            )
            report.warnings.append(message)
            warnings.warn(message, ConversionWarning, stacklevel=2)
    report.duration_source = (
        "kineto"
        if link is not None
        else ("host" if any(o.duration_us for o in host.ops) else "none")
    )
    groups = read_process_groups(
        host,
        kineto.distributed_info if kineto is not None else None,
        rank=rank,
        world_size=world_size,
    )
    report.rank = groups.rank
    report.process_groups = {g.name: list(g.ranks) for g in groups.groups.values()}

    units, unit_of, counts, fates, backend_ops = select_units(host)
    report.host_nodes_by_kind.update(counts)
    report.host_fates.update(fates)
    unpaired = pair_backend_ops(units, unit_of, backend_ops, host.by_id)
    paired = len({op.id for op in backend_ops}) - len(unpaired)
    if paired:
        report.host_fates["folded: backend span of its c10d op"] += paired
    if unpaired:
        # A backend span with no c10d op (e.g. recorded before the trace started) keeps its
        # time as a plain node rather than vanishing.
        for op in unpaired:
            units.append(Unit(op, "comp", members=[op]))
        units.sort(key=lambda u: (u.op.rf_id, u.op.id))
        report.host_fates["emitted: backend span without its c10d op"] += len(unpaired)
        report.warnings.append(
            f"{len(unpaired)} backend span(s) had no c10d op to pair with; kept as compute nodes"
        )
    if link is not None:
        units, absorbed = absorb_worker_ops(units, link)
        if absorbed:
            report.host_fates["emitted"] -= absorbed
            report.host_fates["folded: ran inside its collective on the worker thread"] += absorbed
    opts = BuildOptions(host_gaps=host_gaps, known_sequences=known_sequences)
    graph = build_graph(units, kineto if link is not None else None, link, groups, report, opts)
    for name, value in groups.metadata_attrs().items():
        set_attr(graph.metadata, name, value)
    set_attr(graph.metadata, "source_schema", host.schema)
    set_attr(graph.metadata, "converter", "trainsim chakra_et.convert.pytorch")
    report.et_nodes_out = len(graph)
    report.et_nodes_by_type = Counter(node_type_name(n.type) for n in graph)
    if check:
        validate(graph, source=f"ET converted from {host.source}")
    if kineto is not None and kineto.profiler_steps and link is not None:
        report.measured_step_us = kineto.profiler_steps[-1].dur_us
    return Conversion(graph, report)


def convert_pytorch(
    host: PathLike,
    kineto: PathLike | None = None,
    output: PathLike | None = None,
    *,
    rank: int | None = None,
    world_size: int | None = None,
    host_gaps: bool = True,
    known_sequences: GroupSequences | None = None,
) -> Conversion:
    """Convert one rank's host trace (and optional Kineto trace) into a Chakra ET.

    ``rank``/``world_size`` override what the traces say (Kineto's ``distributedInfo``).
    ``host_gaps`` folds the CPU time between ops on a thread into the next op. With
    ``output`` the ET is also written there. ``known_sequences`` gives, per process group,
    the collectives (comm type name, bytes) other ranks issued on it: gloo traces, which name
    no group, use them to tell worker threads apart. The graph is validated before it is
    returned.
    """
    with _gc_paused():
        host_trace = load_host_trace(host)
        kineto_trace = load_kineto_trace(kineto) if kineto is not None else None
    if rank is None and (kineto_trace is None or "rank" not in kineto_trace.distributed_info):
        rank = _rank_from_name(Path(host).name)  # Kineto's own rank, when it has one, wins
    result = convert_traces(
        host_trace,
        kineto_trace,
        rank=rank,
        world_size=world_size,
        host_gaps=host_gaps,
        known_sequences=known_sequences,
    )
    if output is not None:
        save(result.graph, output)
        result.report.output = os.fspath(output)
    return result


_RANK_PATTERNS = (
    re.compile(r"rank[_-]?(\d+)", re.IGNORECASE),
    re.compile(r"^[A-Za-z_]+[._-](\d+)\.(?:pt\.trace\.)?json(?:\.gz)?$"),
)


def _rank_from_name(name: str) -> int | None:
    for pattern in _RANK_PATTERNS:
        match = pattern.search(name)
        if match:
            return int(match.group(1))
    return None


def _sniff(path: Path) -> str:
    """``"host"``, ``"kineto"`` or ``""`` from the first bytes of a JSON file."""
    try:
        with open(path, "rb") as raw:
            head = raw.read(2)
        opener = gzip.open if head == b"\x1f\x8b" else open
        with opener(path, "rb") as stream:
            text = stream.read(4096).decode("utf-8", "replace")
    except (OSError, EOFError):
        return ""
    if '"schemaVersion"' in text or '"traceEvents"' in text or '"deviceProperties"' in text:
        return "kineto"
    if '"nodes"' in text or '"schema"' in text:
        return "host"
    return ""


def find_rank_files(directory: PathLike) -> dict[int, tuple[Path, Path | None]]:
    """Pair each rank's host trace with its Kineto trace in a directory.

    Names like ``host.R.json``/``device.R.json`` and ``*_rank_R*`` spellings are read for the
    rank; each file's first bytes tell a host trace from a Kineto one.
    """
    folder = Path(directory)
    if not folder.is_dir():
        raise TraceConversionError(f"{folder}: not a directory")
    hosts: dict[int, Path] = {}
    kinetos: dict[int, Path] = {}
    for path in sorted(folder.iterdir()):
        if not path.is_file() or not path.name.endswith((".json", ".json.gz")):
            continue
        rank = _rank_from_name(path.name)
        kind = _sniff(path)
        if rank is None or not kind:
            continue
        target = hosts if kind == "host" else kinetos
        if rank in target:
            raise TraceConversionError(
                f"{folder}: two {kind} traces for rank {rank}: {target[rank].name}, {path.name}"
            )
        target[rank] = path
    if not hosts:
        raise TraceConversionError(
            f"{folder}: no host execution traces named by rank (host.R.json, *_rank_R*.json)"
        )
    return {rank: (hosts[rank], kinetos.get(rank)) for rank in sorted(hosts)}


def convert_directory(
    directory: PathLike,
    output_dir: PathLike,
    *,
    name: str = "et",
    host_gaps: bool = True,
) -> list[Conversion]:
    """Convert every rank of a directory into ``OUTPUT_DIR/NAME.R.et`` (ASTRA-sim's naming).

    A gloo rank whose worker threads fit more than one assignment to process groups is
    converted again with the collectives that ranks with a certain assignment issued on each
    group, until no rank is resolved any more.
    """
    pairs = find_rank_files(directory)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)

    def convert(rank: int, known: GroupSequences | None = None) -> Conversion:
        host, kineto = pairs[rank]
        return convert_pytorch(
            host,
            kineto,
            out / f"{name}.{rank}.et",
            rank=rank,
            host_gaps=host_gaps,
            known_sequences=known,
        )

    results = {rank: convert(rank) for rank in pairs}
    while True:
        unsure = [r for r, c in results.items() if (c.report.pg_assignment_fits or 1) > 1]
        known: dict[str, list[tuple[str, int]]] = {}
        for rank, result in results.items():
            if rank not in unsure:
                for group, sequence in collective_sequences(result.report.collectives).items():
                    known.setdefault(group, sequence)
        resolved = 0
        for rank in unsure:
            again = convert(rank, known)
            if (again.report.pg_assignment_fits or 0) == 1:
                resolved += 1
            results[rank] = again
        if not resolved:
            break
    return [results[rank] for rank in sorted(results)]
