"""Networks of NPUs and switches with per-link bandwidth and latency."""

__all__: list[str] = []
