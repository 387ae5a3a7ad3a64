"""Collective-communication algorithms, their schedules and cost models."""

__all__: list[str] = []
