"""The simulator that runs Chakra ET graphs on a system: one engine for every kind of input.

``simulate(workload, system)`` runs the ET graphs of a ``Workload`` (every rank's, or one
representative per rank class) on a ``System`` (device, network, collective algorithms and
cost model, scheduling) and returns a ``StepResult``.
"""

from engine._clusters import CLUSTER_PRESETS, ClusterPreset, cluster_system
from engine._errors import DeadlockError, EngineError, SystemConfigError, WorkloadError
from engine._predict import plan_workload, predict
from engine._result import RankBreakdown, StepMetrics, StepResult
from engine._simulate import simulate
from engine._system import Scheduling, System, load_system
from engine._workload import Workload, groups_from_metadata, load_comm_groups, load_workload

__all__ = [
    "CLUSTER_PRESETS",
    "ClusterPreset",
    "DeadlockError",
    "EngineError",
    "RankBreakdown",
    "Scheduling",
    "StepMetrics",
    "StepResult",
    "System",
    "SystemConfigError",
    "Workload",
    "WorkloadError",
    "cluster_system",
    "groups_from_metadata",
    "load_comm_groups",
    "load_system",
    "load_workload",
    "plan_workload",
    "predict",
    "simulate",
]
