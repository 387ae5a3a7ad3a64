"""Workload specs, parallelism plans, devices, memory footprints and ET generation."""

__all__: list[str] = []
