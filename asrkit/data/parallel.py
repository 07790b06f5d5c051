"""Ordered parallel map with a rich progress bar, for data preparation and feature extraction.

Example:
    >>> list(parallel_map(abs, [-1, 2, -3], jobs=2, show=False))
    [1, 2, 3]
"""

from __future__ import annotations

import multiprocessing
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from typing import TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

console = Console(stderr=True)  # progress goes to stderr; stdout is for results
# Fork starts a worker in milliseconds where spawn re-imports torch (seconds per worker). As in
# torch's DataLoader, forking is safe because each worker sets one torch thread before any op,
# so the parent's OpenMP pool is never used in the child. Elsewhere (macOS) we spawn.
_START_METHOD = "fork" if sys.platform.startswith("linux") else "spawn"
R = TypeVar("R")
T = TypeVar("T")


def progress_bar(show: bool = True) -> Progress:
    """The progress bar every preparation step uses (a no-op when `show` is False)."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not show,
    )


def parallel_map(
    fn: Callable[[T], R],
    items: Sequence[T],
    *,
    jobs: int = 1,
    description: str = "",
    processes: bool = False,
    show: bool = True,
    initializer: Callable[[], None] | None = None,
) -> Iterator[R]:
    """Apply `fn` to every item and yield the results in input order, with a progress bar.

    Threads suit audio header reads (libsndfile releases the GIL); CPU-bound work such as
    filterbanks needs `processes=True`. `initializer` runs once in each worker (not here when
    `jobs` is 1); pass one that calls `torch.set_num_threads(1)` when workers run torch ops.
    """
    with progress_bar(show) as progress:
        task = progress.add_task(description, total=len(items))
        if jobs <= 1:
            for item in items:
                yield fn(item)
                progress.advance(task)
            return
        executor: Executor
        if processes:
            context = multiprocessing.get_context(_START_METHOD)
            executor = ProcessPoolExecutor(jobs, mp_context=context, initializer=initializer)
        else:
            executor = ThreadPoolExecutor(jobs, initializer=initializer)
        with executor:
            # Chunks amortise inter-process overhead on many short files.
            chunk = max(1, min(32, len(items) // (jobs * 8))) if processes else 1
            for result in executor.map(fn, items, chunksize=chunk):
                yield result
                progress.advance(task)
