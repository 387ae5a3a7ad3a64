"""What-if studies, validation and the trainsim command line."""

__all__: list[str] = []
