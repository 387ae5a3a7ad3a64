"""Telling gloo worker threads apart by group: every assignment that fits the trace is found,
the true one among them, and other ranks' collectives single it out."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from trainsim.chakra_et.convert._collectives import comm_size_bytes, comm_spec
from trainsim.chakra_et.convert._gloo_threads import (
    GLOO_WORKER_THREADS,
    collective_sequences,
    infer_thread_groups,
)
from trainsim.chakra_et.convert._host_et import HostOp
from trainsim.chakra_et.convert._kineto import KinetoEvent
from trainsim.chakra_et.convert._link import HostKinetoLink
from trainsim.chakra_et.convert._process_groups import ProcessGroup, ProcessGroups
from trainsim.chakra_et.convert._units import Unit
from trainsim.chakra_et.schema import CollectiveCommType

_MAIN_TID = 1
_OPS = ("allreduce_", "broadcast_", "_allgather_base_", "_reduce_scatter_base_", "barrier")


def _tensor(tensor_id: int, numel: int) -> list[object]:
    return [tensor_id, tensor_id, 0, numel, 4, "cpu"]


@dataclass
class _Trace:
    units: list[Unit]
    link: HostKinetoLink
    groups: ProcessGroups
    truth: dict[int | str, str]
    sequences: dict[str, list[tuple[str, int]]]


def _trace(sizes: list[int], gaps: list[int], program: list[tuple[int, int, int, int]]) -> _Trace:
    """Groups of ``sizes`` (rank 0 in each) with two worker threads each, thread ids spaced by
    ``gaps``; ``program`` is (group, thread of the group, op, numel) per collective."""
    groups = ProcessGroups(rank=0, world_size=max(sizes))
    tid = 100
    threads: list[list[int]] = []
    for index, size in enumerate(sizes):
        name = str(index)
        groups.groups[name] = ProcessGroup(
            name,
            desc="default_pg" if index == 0 else "",
            backend="cpu:gloo",
            ranks=list(range(size)),
            size=size,
        )
        mine = []
        for k in range(GLOO_WORKER_THREADS):
            tid += 1 + gaps[(index * GLOO_WORKER_THREADS + k) % len(gaps)]
            mine.append(tid)
        threads.append(mine)
    link = HostKinetoLink()
    units: list[Unit] = []
    truth: dict[int | str, str] = {}
    sequences: dict[str, list[tuple[str, int]]] = {}
    clock = 0.0
    for number, (group, which, op_index, numel) in enumerate(program):
        name = _OPS[op_index]
        size = sizes[group]
        spec = comm_spec(f"c10d::{name}")
        assert spec is not None
        if name == "_allgather_base_":
            inputs: list[object] = [_tensor(1, numel * size), _tensor(2, numel)]
        elif name == "_reduce_scatter_base_":
            inputs = [_tensor(1, numel), _tensor(2, numel * size)]
        elif name == "barrier":
            inputs = []
        else:
            inputs = [[_tensor(1, numel)]]
        types = ["Tensor(float)"] * len(inputs)
        op = HostOp(2 * number, f"c10d::{name}", 0, rf_id=number, inputs=inputs, input_types=types)
        backend = HostOp(2 * number + 1, f"gloo:{spec.family}", op.id, rf_id=number)
        worker = threads[group][which % GLOO_WORKER_THREADS]
        link.span_of[op.id] = KinetoEvent(op.name, "cpu_op", clock, 10.0, _MAIN_TID)
        link.span_of[backend.id] = KinetoEvent(backend.name, "cpu_op", clock + 1, 8.0, worker)
        clock += 20.0
        units.append(Unit(op, "comm", spec=spec, backend=[backend]))
        truth[worker] = str(group)
        sequences.setdefault(str(group), []).append(
            (CollectiveCommType.Name(spec.comm_type), comm_size_bytes(op, spec))
        )
    return _Trace(units, link, groups, truth, sequences)


_programs = st.integers(min_value=1, max_value=4).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(min_value=2, max_value=8), min_size=n, max_size=n),
        st.lists(st.integers(min_value=0, max_value=4), min_size=1, max_size=8),
        st.lists(
            st.tuples(
                st.integers(min_value=0, max_value=n - 1),
                st.integers(min_value=0, max_value=1),
                st.integers(min_value=0, max_value=len(_OPS) - 1),
                st.integers(min_value=1, max_value=64),
            ),
            min_size=1,
            max_size=14,
        ),
    )
)


@settings(max_examples=150, deadline=None)
@given(_programs)
def test_the_true_assignment_always_fits(
    case: tuple[list[int], list[int], list[tuple[int, int, int, int]]],
) -> None:
    trace = _trace(*case)
    alone = infer_thread_groups(trace.units, trace.link, trace.groups)
    assert alone.fits >= 1
    assert set(alone.by_thread) == set(trace.truth)
    if alone.fits == 1:
        assert alone.by_thread == trace.truth


@settings(max_examples=150, deadline=None)
@given(_programs)
def test_other_ranks_sequences_single_out_the_truth(
    case: tuple[list[int], list[int], list[tuple[int, int, int, int]]],
) -> None:
    trace = _trace(*case)
    told = infer_thread_groups(trace.units, trace.link, trace.groups, trace.sequences)
    assert told.fits >= 1
    # Whatever is chosen gives every group exactly the collectives its other members saw.
    chosen: dict[str, list[tuple[str, int]]] = {}
    for unit in trace.units:
        backend_tid = trace.link.span_of[unit.backend[0].id].tid
        spec = unit.spec
        assert spec is not None
        chosen.setdefault(told.by_thread[backend_tid], []).append(
            (CollectiveCommType.Name(spec.comm_type), comm_size_bytes(unit.op, spec))
        )
    assert chosen == trace.sequences


def test_size_evidence_separates_interleaved_thread_ids() -> None:
    """The default group's second thread sits next to the subgroup's: only the all-gather it
    ran (4x its input: a group of 4) keeps it in the default group."""
    trace = _trace(
        [4, 2],
        [0, 6, 0, 0],
        [(0, 0, 0, 8), (0, 1, 2, 8), (1, 0, 0, 8)],
    )
    threads = sorted(trace.truth, key=str)
    assert [int(t) for t in threads] == [101, 108, 109]  # the widest gap splits them wrongly
    inferred = infer_thread_groups(trace.units, trace.link, trace.groups)
    assert inferred.fits == 1
    assert inferred.by_thread == trace.truth


def test_an_ambiguous_rank_is_resolved_by_the_others() -> None:
    trace = _trace([4, 2], [0, 6, 0, 0], [(0, 0, 0, 8), (0, 1, 0, 16), (1, 0, 0, 8)])
    alone = infer_thread_groups(trace.units, trace.link, trace.groups)
    assert alone.fits == 2
    assert alone.by_thread != trace.truth  # the thread-id gap alone guesses wrong here
    told = infer_thread_groups(trace.units, trace.link, trace.groups, {"0": trace.sequences["0"]})
    assert told.fits == 1
    assert told.by_thread == trace.truth


def test_collective_sequences_read_a_report() -> None:
    records = [
        {"pg_name": "0", "comm_type": "ALL_REDUCE", "comm_size_bytes": 8},
        {"pg_name": "1", "comm_type": "BARRIER", "comm_size_bytes": 0},
        {"pg_name": "0", "comm_type": "ALL_GATHER", "comm_size_bytes": 4},
    ]
    assert collective_sequences(records) == {
        "0": [("ALL_REDUCE", 8), ("ALL_GATHER", 4)],
        "1": [("BARRIER", 0)],
    }
