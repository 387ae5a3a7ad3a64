"""trainsim: predict distributed-training step time and time-to-train from Chakra execution traces.

The repository's folders install as this package's subpackages (``trainsim.chakra_et``,
``trainsim.topology``, ``trainsim.collectives``, ``trainsim.models``, ``trainsim.engine``,
``trainsim.studies``); this module gathers the API a notebook needs first:

>>> import trainsim
>>> plan = trainsim.ParallelPlan.for_gpus(64, tp=2, global_batch_size=256)
>>> result = trainsim.predict(
...     trainsim.model_preset("llama3-8b"), plan, trainsim.cluster_system("h100-sxm", 64)
... )
>>> 0.0 < result.mfu < 1.0
True
"""

from importlib.metadata import PackageNotFoundError, version

from trainsim.chakra_et import ETGraph, convert_directory, convert_pytorch, load, save
from trainsim.collectives import CompressionSpec, collective_cost, synthesize_tacos
from trainsim.engine import (
    CLUSTER_PRESETS,
    FailureSpec,
    InterruptionTable,
    StepResult,
    System,
    TrainingForecast,
    VariabilitySpec,
    Workload,
    cluster_system,
    forecast,
    load_system,
    load_workload,
    predict,
    simulate,
)
from trainsim.models import (
    DEVICE_PRESETS,
    MODEL_PRESETS,
    DeviceSpec,
    ModelSpec,
    ParallelPlan,
    device_preset,
    load_device,
    load_model,
    memory_per_gpu,
    model_from_hf_config,
    model_preset,
    write_rank_classes,
)
from trainsim.studies import SearchSpace, SweepResult, sweep, topology_whatif
from trainsim.topology import Topology, load_network, parse_spec

try:
    # One source of truth: the version pyproject.toml gives the installed distribution.
    __version__ = version("trainsim")
except PackageNotFoundError:  # pragma: no cover - only a copied tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "CLUSTER_PRESETS",
    "DEVICE_PRESETS",
    "MODEL_PRESETS",
    "CompressionSpec",
    "DeviceSpec",
    "ETGraph",
    "FailureSpec",
    "InterruptionTable",
    "ModelSpec",
    "ParallelPlan",
    "SearchSpace",
    "StepResult",
    "SweepResult",
    "System",
    "Topology",
    "TrainingForecast",
    "VariabilitySpec",
    "Workload",
    "__version__",
    "cluster_system",
    "collective_cost",
    "convert_directory",
    "convert_pytorch",
    "device_preset",
    "forecast",
    "load",
    "load_device",
    "load_model",
    "load_network",
    "load_system",
    "load_workload",
    "memory_per_gpu",
    "model_from_hf_config",
    "model_preset",
    "parse_spec",
    "predict",
    "save",
    "simulate",
    "sweep",
    "synthesize_tacos",
    "topology_whatif",
    "write_rank_classes",
]
