"""What-if studies, validation and the trainsim command line."""

from trainsim.studies._compression import (
    LearnersStudy,
    adacomp_crossover_closed_form,
    learners_study,
)
from trainsim.studies._executors import Executor, LocalExecutor, RayExecutor, SerialExecutor
from trainsim.studies._sweep import SweepResult, sweep
from trainsim.studies._sweep_space import Constraints, SearchSpace, SweepConfigError, load_space
from trainsim.studies._whatif import WhatIfResult, compression_whatif, topology_whatif

__all__: list[str] = [
    "Constraints",
    "Executor",
    "LearnersStudy",
    "LocalExecutor",
    "RayExecutor",
    "SearchSpace",
    "SerialExecutor",
    "SweepConfigError",
    "SweepResult",
    "WhatIfResult",
    "adacomp_crossover_closed_form",
    "compression_whatif",
    "learners_study",
    "load_space",
    "sweep",
    "topology_whatif",
]
