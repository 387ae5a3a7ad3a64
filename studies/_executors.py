"""Executors of sweeps: one small interface, run in this process, in local processes, or on Ray.

An executor applies a picklable function to items and yields the results as they finish, in
any order. ``SerialExecutor`` runs here (tests, debugging); ``LocalExecutor`` uses every core
of this machine through a process pool; ``RayExecutor`` sends tasks to a Ray cluster (a given
address, or a local one it starts) and needs ``pip install trainsim[ray]``. The function is
deterministic, so every executor gives the same results: only their order differs.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from types import TracebackType
from typing import Any, TypeVar

__all__ = [
    "EXECUTORS",
    "Executor",
    "LocalExecutor",
    "RayExecutor",
    "SerialExecutor",
    "make_executor",
]

T = TypeVar("T")
R = TypeVar("R")


class Executor(ABC):
    """Applies a function to items and yields results as they finish (any order)."""

    name: str = "executor"

    @abstractmethod
    def imap_unordered(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[R]:
        """Yield ``fn(item)`` for every item as soon as each is done."""

    def close(self) -> None:
        """Release workers; pending work is cancelled."""
        return None

    def __enter__(self) -> Executor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class SerialExecutor(Executor):
    """Runs every item in this process, in order."""

    name = "serial"

    def imap_unordered(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[R]:
        """Yield ``fn(item)`` for every item, in order."""
        for item in items:
            yield fn(item)


def _run_chunk(fn: Callable[[T], R], chunk: Sequence[T]) -> list[R]:
    return [fn(item) for item in chunk]


def _chunks(items: Sequence[T], size: int) -> list[Sequence[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


class LocalExecutor(Executor):
    """A pool of worker processes on this machine (all cores unless ``workers`` says otherwise).

    Items travel in small chunks: per-task overhead would otherwise dominate plans that take
    milliseconds. Workers are forked when the process has a single thread, so they inherit
    whatever the parent already built (the sweep builds each cluster's ``System`` first).
    """

    name = "local"

    def __init__(self, workers: int | None = None, chunk_size: int | None = None) -> None:
        if workers is not None and workers < 1:
            raise ValueError(f"workers={workers} must be at least 1")
        self.workers = workers or os.cpu_count() or 1
        self.chunk_size = chunk_size
        self._pool: ProcessPoolExecutor | None = None

    def _get_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            methods = multiprocessing.get_all_start_methods()
            # Forking a multi-threaded process can deadlock its children; fork only when safe.
            safe_fork = "fork" in methods and threading.active_count() == 1
            method = "fork" if safe_fork else ("forkserver" if "forkserver" in methods else None)
            context = multiprocessing.get_context(method)
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=context)
        return self._pool

    def imap_unordered(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[R]:
        """Yield ``fn(item)`` for every item as worker processes finish them."""
        if not items:
            return
        size = self.chunk_size or max(1, min(8, len(items) // (4 * self.workers)))
        pool = self._get_pool()
        pending: set[Future[list[R]]] = {
            pool.submit(_run_chunk, fn, chunk) for chunk in _chunks(items, size)
        }
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield from future.result()

    def close(self) -> None:
        """Stop the workers, cancelling chunks not yet started."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class RayExecutor(Executor):
    """Tasks on a Ray cluster: ``address`` to join one, or a local one started (and stopped) here.

    ``num_cpus`` caps the CPUs of a local cluster it starts (all cores by default).
    """

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None) -> None:
        self.address = address
        self.num_cpus = num_cpus
        self._started = False
        self._ray: Any = None

    def _connect(self) -> Any:
        if self._ray is not None:
            return self._ray
        try:
            import ray
        except ImportError:
            raise ValueError("executor 'ray' needs Ray: pip install 'trainsim[ray]'") from None
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if self.address is None:
                kwargs.update(address="local", num_cpus=self.num_cpus)
            else:
                kwargs["address"] = self.address
            ray.init(**kwargs)
            self._started = True
        self._ray = ray
        return ray

    def imap_unordered(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[R]:
        """Yield ``fn(item)`` for every item as Ray tasks finish them."""
        if not items:
            return
        ray = self._connect()
        remote = ray.remote(_run_chunk)
        fn_ref = ray.put(fn)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        size = max(1, min(8, len(items) // (4 * cpus)))
        pending = [remote.remote(fn_ref, chunk) for chunk in _chunks(items, size)]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                yield from ray.get(ref)

    def close(self) -> None:
        """Shut down the Ray cluster if this executor started it."""
        if self._started and self._ray is not None:
            self._ray.shutdown()
        self._started = False
        self._ray = None


#: Executor names the sweep and the CLI accept.
EXECUTORS = ("local", "ray", "serial")


def make_executor(
    executor: str | Executor = "local",
    *,
    workers: int | None = None,
    address: str | None = None,
) -> Executor:
    """An executor by name (``local``, ``ray``, ``serial``), or the one given."""
    if isinstance(executor, Executor):
        return executor
    if executor == "local":
        return LocalExecutor(workers)
    if executor == "ray":
        return RayExecutor(address, workers)
    if executor == "serial":
        return SerialExecutor()
    raise ValueError(f"executor={executor!r} is not one of: {', '.join(EXECUTORS)}")
