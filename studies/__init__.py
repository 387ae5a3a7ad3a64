"""What-if studies, validation and the trainsim command line."""

from studies._compression import LearnersStudy, adacomp_crossover_closed_form, learners_study

__all__: list[str] = ["LearnersStudy", "adacomp_crossover_closed_form", "learners_study"]
