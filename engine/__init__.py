"""The simulator that runs Chakra ET graphs on a system: one engine for every kind of input.

``simulate(workload, system)`` runs the ET graphs of a ``Workload`` (every rank's, or one
representative per rank class) on a ``System`` (device, network, collective algorithms and
cost model, scheduling) and returns a ``StepResult``.
"""

from trainsim.engine._clusters import (
    CLUSTER_PRESETS,
    ClusterPreset,
    cluster_device,
    cluster_system,
    default_cluster,
)
from trainsim.engine._empirical import variability_from_workload
from trainsim.engine._errors import DeadlockError, EngineError, SystemConfigError, WorkloadError
from trainsim.engine._failures import (
    FailureSpec,
    InterruptionTable,
    daly_expected_wall_s,
    daly_interval_s,
    young_interval_s,
)
from trainsim.engine._fast import FastStep, FastTierError, fast_step, fast_tier_applies
from trainsim.engine._forecast import TrainingForecast, forecast
from trainsim.engine._predict import default_granularity, plan_workload, predict
from trainsim.engine._result import RankBreakdown, StepMetrics, StepResult
from trainsim.engine._simulate import simulate
from trainsim.engine._stochastic import StepSamples, sample_steps
from trainsim.engine._system import Scheduling, System, load_system
from trainsim.engine._variability import (
    Distribution,
    ForecastConfigError,
    VariabilitySpec,
    load_variability,
)
from trainsim.engine._workload import (
    Workload,
    groups_from_metadata,
    load_comm_groups,
    load_workload,
)

__all__ = [
    "CLUSTER_PRESETS",
    "ClusterPreset",
    "DeadlockError",
    "Distribution",
    "EngineError",
    "FailureSpec",
    "FastStep",
    "FastTierError",
    "ForecastConfigError",
    "InterruptionTable",
    "RankBreakdown",
    "Scheduling",
    "StepMetrics",
    "StepResult",
    "StepSamples",
    "System",
    "SystemConfigError",
    "TrainingForecast",
    "VariabilitySpec",
    "Workload",
    "WorkloadError",
    "cluster_device",
    "cluster_system",
    "daly_expected_wall_s",
    "daly_interval_s",
    "default_cluster",
    "default_granularity",
    "fast_step",
    "fast_tier_applies",
    "forecast",
    "groups_from_metadata",
    "load_comm_groups",
    "load_system",
    "load_variability",
    "load_workload",
    "plan_workload",
    "predict",
    "sample_steps",
    "simulate",
    "variability_from_workload",
    "young_interval_s",
]
