"""Conversion of PyTorch host execution traces (+ Kineto device traces) into Chakra ETs.

A host trace may come with its Kineto trace (paired by rank and pid), alone, as an "ET+"
trace with the kernels merged in, or be absent: a Kineto trace converts on its own
(``convert_kineto``). With GPU work, the host threads issue kernels and collectives without
waiting for them; GPU streams, cross-stream waits and host syncs order them.

What a converted ET holds, beyond the Chakra reserved attributes:

- every node: ``host_id`` (the host-trace node it came from; GPU nodes and ``host_tail``
  have none); compute nodes ``is_cpu_op``, and ``host_gap_us`` when idle CPU time before the
  op on its thread was added to ``duration_micros`` (``host_gap_after_us``: time after it,
  before a collective or the end of the step); GPU nodes ``stream``. A host op that blocked
  on the GPU is followed by ``<op> [<call>]`` (``sync_of``: its host id; ``gpu_wait_us``).
  A step that ends waiting for a collective ends with a ``host_tail`` compute node: the time
  from the collective's end to the step's.
- communication nodes: ``comm_type``, ``comm_size`` (bytes of the per-rank buffer, as
  ASTRA-sim reads it), ``pg_name``; ``stream`` when an NCCL kernel timed it; send/recv
  also ``comm_src``, ``comm_dst`` (global ranks) and ``comm_tag``.
- GlobalMetadata: ``rank``, ``world_size``, ``comm_backend``, ``pg_names`` and, per group,
  ``pg_ranks:<pg_name>`` (global ranks, int64 list) and ``pg_desc:<pg_name>``;
  ``source_schema`` and ``converter``.
"""

from trainsim.chakra_et.convert._errors import (
    ConversionWarning,
    HostTraceError,
    KinetoTraceError,
    RunMismatchError,
    TraceConversionError,
    UnsupportedSchemaError,
)
from trainsim.chakra_et.convert._host_et import (
    SUPPORTED_SCHEMAS,
    HostTrace,
    load_host_trace,
    parse_host_trace,
)
from trainsim.chakra_et.convert._kineto import KinetoTrace, load_kineto_trace, parse_kineto_trace
from trainsim.chakra_et.convert._report import ConversionReport
from trainsim.chakra_et.convert.pytorch import (
    Conversion,
    convert_directory,
    convert_kineto,
    convert_pytorch,
    convert_traces,
    find_rank_files,
)

__all__ = [
    "SUPPORTED_SCHEMAS",
    "Conversion",
    "ConversionReport",
    "ConversionWarning",
    "HostTrace",
    "HostTraceError",
    "KinetoTrace",
    "KinetoTraceError",
    "RunMismatchError",
    "TraceConversionError",
    "UnsupportedSchemaError",
    "convert_directory",
    "convert_kineto",
    "convert_pytorch",
    "convert_traces",
    "find_rank_files",
    "load_host_trace",
    "load_kineto_trace",
    "parse_host_trace",
    "parse_kineto_trace",
]
