"""The simulator that runs Chakra ET graphs on a system."""

__all__: list[str] = []
