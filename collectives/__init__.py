"""Collective-communication algorithms, their schedules and cost models.

One schedule format (:class:`Schedule`) is produced by every algorithm (ring, bidirectional
ring, direct, halving-doubling, double binary tree, in-network reduction, and hierarchical
compositions over network dimensions) and consumed by every cost model (analytical
alpha-beta, link-level congestion-aware); a bus-bandwidth model predicts NCCL on real clusters.
The engine calls :func:`collective_time_us`, and :func:`compressed_sync_time_us` for
data-parallel gradient collectives under gradient compression (AdaComp, ScaleCom: real
numpy compressors with error feedback, and their performance transform).
:func:`synthesize_tacos` synthesizes All-Gather, Reduce-Scatter and All-Reduce for any
topology (``algorithm="tacos"`` everywhere, cached) and exports them for MSCCL runtimes.
"""

from ._algorithms import ALGORITHMS, local_schedule, parse_algorithm
from ._api import MODELS, collective_cost, collective_time_us, get_model
from ._compose import Plan, build_schedule, plan_phases
from ._compress_adacomp import AdaComp, AdaCompResult
from ._compress_calibrate import calibrate_compression
from ._compress_cost import (
    CompressedSync,
    compressed_sync_cost,
    compressed_sync_time_us,
    compression_overhead_us,
)
from ._compress_scalecom import ScaleCom, ScaleComResult
from ._compress_spec import CompressionError, CompressionSpec
from ._compress_stats import CompressionStats
from ._cost import AnalyticalModel, CollectiveCost, CollectiveRequest, CongestionModel, CostModel
from ._errors import (
    AlgorithmError,
    CollectiveError,
    ConfigError,
    DeliveryError,
    GroupError,
    ScheduleSizeError,
)
from ._evaluate import Evaluation, evaluate, routes_for
from ._local import LocalSchedule
from ._nccl import NcclModel
from ._nccl_params import (
    NCCL_REFERENCE_NET_HOP_US,
    NCCL_REFERENCE_NVLINK_HOP_US,
    NcclParams,
    NcclProtocol,
)
from ._ops import CollectiveOp
from ._schedule import Phase, Schedule, verify_delivery
from ._system import SystemConfig, read_astra_system
from ._tacos_cache import clear_tacos_cache, tacos_cache_info, tacos_schedule
from ._tacos_export import to_msccl_json, to_msccl_xml, write_msccl
from ._tacos_schedule import TacosResult, synthesize_tacos, tacos_lower_bound_us

__all__ = [
    "ALGORITHMS",
    "MODELS",
    "NCCL_REFERENCE_NET_HOP_US",
    "NCCL_REFERENCE_NVLINK_HOP_US",
    "AdaComp",
    "AdaCompResult",
    "AlgorithmError",
    "AnalyticalModel",
    "CollectiveCost",
    "CollectiveError",
    "CollectiveOp",
    "CollectiveRequest",
    "CompressedSync",
    "CompressionError",
    "CompressionSpec",
    "CompressionStats",
    "ConfigError",
    "CongestionModel",
    "CostModel",
    "DeliveryError",
    "Evaluation",
    "GroupError",
    "LocalSchedule",
    "NcclModel",
    "NcclParams",
    "NcclProtocol",
    "Phase",
    "Plan",
    "ScaleCom",
    "ScaleComResult",
    "Schedule",
    "ScheduleSizeError",
    "SystemConfig",
    "TacosResult",
    "build_schedule",
    "calibrate_compression",
    "clear_tacos_cache",
    "collective_cost",
    "collective_time_us",
    "compressed_sync_cost",
    "compressed_sync_time_us",
    "compression_overhead_us",
    "evaluate",
    "get_model",
    "local_schedule",
    "parse_algorithm",
    "plan_phases",
    "read_astra_system",
    "routes_for",
    "synthesize_tacos",
    "tacos_cache_info",
    "tacos_lower_bound_us",
    "tacos_schedule",
    "to_msccl_json",
    "to_msccl_xml",
    "verify_delivery",
    "write_msccl",
]
