"""Converting PyTorch host execution traces (+ Kineto device traces) into Chakra ETs.

>>> from trainsim.chakra_et.convert import convert_pytorch
>>> result = convert_pytorch("host.0.json.gz", "device.0.json.gz")  # doctest: +SKIP
>>> print(result.report.format())  # doctest: +SKIP
"""

from __future__ import annotations

import gc
import os
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
from trainsim.chakra_et.convert._collectives import backend_comm_spec
from trainsim.chakra_et.convert._errors import (
    ConversionWarning,
    RunMismatchError,
    TraceConversionError,
)
from trainsim.chakra_et.convert._et_plus import split_et_plus
from trainsim.chakra_et.convert._gloo_threads import GroupSequences, collective_sequences
from trainsim.chakra_et.convert._host_et import HostTrace, load_host_trace
from trainsim.chakra_et.convert._kineto import KinetoTrace, load_kineto_trace
from trainsim.chakra_et.convert._kineto_only import (
    KinetoOnly,
    annotate_collectives,
    host_from_kineto,
    process_group_configs,
)
from trainsim.chakra_et.convert._link import HostKinetoLink, link_traces
from trainsim.chakra_et.convert._pairing import (
    MIN_MATCH_RATIO,
    find_rank_files,
    rank_from_name,
    run_mismatch,
)
from trainsim.chakra_et.convert._process_groups import read_process_groups
from trainsim.chakra_et.convert._report import ConversionReport
from trainsim.chakra_et.convert._units import Unit, select_units

__all__ = [
    "MIN_MATCH_RATIO",
    "Conversion",
    "convert_directory",
    "convert_kineto",
    "convert_pytorch",
    "convert_traces",
    "find_rank_files",
]

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
    host: HostTrace | None,
    kineto: KinetoTrace | None = None,
    *,
    rank: int | None = None,
    world_size: int | None = None,
    host_gaps: bool = True,
    check: bool = True,
    known_sequences: GroupSequences | None = None,
    force: bool = False,
) -> Conversion:
    """Convert parsed traces (see ``convert_pytorch`` for the options); with ``host`` None,
    the Kineto trace alone (see ``convert_kineto``)."""
    with _gc_paused():
        return _convert(host, kineto, rank, world_size, host_gaps, check, known_sequences, force)


def _convert(
    host: HostTrace | None,
    kineto: KinetoTrace | None,
    rank: int | None,
    world_size: int | None,
    host_gaps: bool,
    check: bool,
    known_sequences: GroupSequences | None = None,
    force: bool = False,
) -> Conversion:
    only: KinetoOnly | None = None
    if host is None:
        if kineto is None:
            raise TraceConversionError("nothing to convert: give a host trace or a Kineto one")
        only = host_from_kineto(kineto)
        host = only.host
    report = ConversionReport(
        host.source if only is None else "(Kineto only)",
        kineto.source if kineto is not None else None,
    )
    report.schema = host.schema
    report.host_nodes_in = len(host.ops)
    link: HostKinetoLink | None = None
    et_plus = split_et_plus(host) if only is None else None
    if only is not None:
        link = only.link
        report.warnings.extend(only.notes)
    elif et_plus is not None:
        message = (
            f"{host.source} is an ET+ trace: its {et_plus.gpu_nodes} GPU nodes (merged in by "
            "the Chakra trace linker) are written as GPU nodes with their stream and "
            "launching op"
            + (f", and Kineto from {kineto.source} is not used" if kineto is not None else "")
            + "; ET+ keeps no stream waits or host syncs, so none are modelled"
        )
        report.warnings.append(message)
        warnings.warn(message, ConversionWarning, stacklevel=2)
        report.host_fates["moved: ET+ GPU node (written as a GPU node)"] += et_plus.gpu_nodes
        if kineto is not None:
            et_plus.kineto.distributed_info = kineto.distributed_info  # its rank and groups
        host, kineto, link = et_plus.host, et_plus.kineto, et_plus.link
        report.kineto_source = None
        report.kineto_match_ratio = round(link.match_ratio, 4)
    elif kineto is not None:
        link = link_traces(host, kineto)
        ratio = link.match_ratio
        report.kineto_match_ratio = round(ratio, 4)
        mismatch = run_mismatch(host, kineto, link)
        if mismatch and not force:
            raise RunMismatchError(
                f"{host.source} and {kineto.source} are from different runs: "
                f"{'; '.join(mismatch)} (force=True / --force converts them anyway)"
            )
        if mismatch and ratio < MIN_MATCH_RATIO:
            message = (
                f"{host.source} and {kineto.source} look like different runs: only "
                f"{ratio:.1%} of host ops match a Kineto span ({link.method}); "
                "Kineto timing is ignored"
            )
            report.warnings.append(message)
            warnings.warn(message, ConversionWarning, stacklevel=2)
            link = None
        elif mismatch:
            message = (
                f"{host.source} and {kineto.source} look like different runs "
                f"({'; '.join(mismatch)}); converted with Kineto timing as forced"
            )
            report.warnings.append(message)
            warnings.warn(message, ConversionWarning, stacklevel=2)
        elif ratio < WARN_MATCH_RATIO:
            message = (
                f"only {ratio:.1%} of host ops in {host.source} match a Kineto span in "
                f"{kineto.source} ({link.method}); unmatched ops use host timing"
            )
            report.warnings.append(message)
            warnings.warn(message, ConversionWarning, stacklevel=2)
    report.duration_source = (
        "ET+ (host trace with Kineto merged in)"
        if et_plus is not None
        else "kineto"
        if link is not None
        else ("host" if any(o.duration_us for o in host.ops) else "none")
    )
    info = kineto.distributed_info if kineto is not None else None
    if only is not None and kineto is not None and "pg_config" not in kineto.distributed_info:
        info = {**kineto.distributed_info, "pg_config": process_group_configs(kineto)}
    groups = read_process_groups(
        host,
        info,
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
    if only is not None and unpaired:
        # Older profilers record some collectives (all-to-all) only as their backend span.
        promoted = []
        for op in unpaired:
            spec = backend_comm_spec(op.name)
            if spec is not None and spec.kind == "coll":
                units.append(Unit(op, "comm", spec=spec, members=[op]))
                promoted.append(op)
        if promoted:
            units.sort(key=lambda u: (u.op.rf_id, u.op.id))
            report.host_fates["emitted: backend span as its collective (no c10d op)"] += len(
                promoted
            )
            unpaired = [op for op in unpaired if op not in promoted]
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
    if only is not None and kineto is not None:
        report.warnings.extend(annotate_collectives(units, only.link, kineto))
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
    by_type = Counter(n.type for n in graph.node_list)  # names once per type, not per node
    report.et_nodes_by_type = Counter({node_type_name(t): c for t, c in by_type.items()})
    if check:
        validate(graph, source=f"ET converted from {host.source}")
    if kineto is not None and kineto.profiler_steps and link is not None:
        report.measured_step_us = kineto.profiler_steps[-1].dur_us
    return Conversion(graph, report)


def convert_pytorch(
    host: PathLike | None,
    kineto: PathLike | None = None,
    output: PathLike | None = None,
    *,
    rank: int | None = None,
    world_size: int | None = None,
    host_gaps: bool = True,
    known_sequences: GroupSequences | None = None,
    force: bool = False,
) -> Conversion:
    """Convert one rank's host trace (and optional Kineto trace) into a Chakra ET.

    ``rank``/``world_size`` override what the traces say (Kineto's ``distributedInfo``).
    ``host_gaps`` folds the CPU time between ops on a thread into the next op. With
    ``output`` the ET is also written there. ``known_sequences`` gives, per process group,
    the collectives (comm type name, bytes) other ranks issued on it: gloo traces, which name
    no group, use them to tell worker threads apart. Traces from different runs (pid,
    recording time, share of host ops found in Kineto) raise ``RunMismatchError`` unless
    ``force``. With ``host`` None the Kineto trace is converted alone (``convert_kineto``).
    The graph is validated before it is returned.
    """
    if host is None and kineto is None:
        raise TraceConversionError("nothing to convert: give a host trace or a Kineto one")
    with _gc_paused():
        # One pause for reading and converting, the traces freed inside it: a collection
        # when the collector is back walks every object allocated while it was paused and
        # still alive (the whole parsed trace, had it ended after reading).
        host_trace = load_host_trace(host) if host is not None else None
        kineto_trace = load_kineto_trace(kineto) if kineto is not None else None
        result = _convert_loaded(
            host,
            kineto,
            host_trace,
            kineto_trace,
            rank=rank,
            world_size=world_size,
            host_gaps=host_gaps,
            known_sequences=known_sequences,
            force=force,
        )
        del host_trace, kineto_trace
    if output is not None:
        save(result.graph, output)
        result.report.output = os.fspath(output)
    return result


def _convert_loaded(
    host: PathLike | None,
    kineto: PathLike | None,
    host_trace: HostTrace | None,
    kineto_trace: KinetoTrace | None,
    *,
    rank: int | None,
    world_size: int | None,
    host_gaps: bool,
    known_sequences: GroupSequences | None,
    force: bool,
) -> Conversion:
    """``convert_pytorch`` once its traces are read: find the rank, convert."""
    kineto_rank = kineto_trace is not None and "rank" in kineto_trace.distributed_info
    if rank is None and not kineto_rank:
        # Kineto's own rank, when it has one, wins over a file name.
        named = host if host is not None else kineto
        assert named is not None
        rank = rank_from_name(Path(named).name)
    if host_trace is None and rank is None and not kineto_rank:
        raise TraceConversionError(
            f"{kineto}: Kineto trace names no rank (no distributedInfo.rank, none in its file "
            "name); give --rank"
        )
    return convert_traces(
        host_trace,
        kineto_trace,
        rank=rank,
        world_size=world_size,
        host_gaps=host_gaps,
        known_sequences=known_sequences,
        force=force,
    )


def convert_kineto(
    kineto: PathLike,
    output: PathLike | None = None,
    *,
    rank: int | None = None,
    world_size: int | None = None,
    host_gaps: bool = True,
) -> Conversion:
    """Convert a Kineto trace on its own, with no host execution trace.

    The last profiled step's CPU ops, GPU kernels per stream and collectives (type, bytes,
    process group and ranks from NCCL metadata) become the ET; what Kineto does not hold is
    listed in the report's warnings (see ``_kineto_only``).
    """
    return convert_pytorch(
        None, kineto, output, rank=rank, world_size=world_size, host_gaps=host_gaps
    )


def convert_directory(
    directory: PathLike,
    output_dir: PathLike,
    *,
    name: str = "et",
    host_gaps: bool = True,
    force: bool = False,
) -> list[Conversion]:
    """Convert every rank of a directory into ``OUTPUT_DIR/NAME.R.et`` (ASTRA-sim's naming).

    A gloo rank whose worker threads fit more than one assignment to process groups is
    converted again with the collectives that ranks with a certain assignment issued on each
    group, until no rank is resolved any more. Files are paired by content
    (``find_rank_files``); ``force`` as in ``convert_pytorch``.
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
            force=force,
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
