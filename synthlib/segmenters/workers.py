"""Jobs in worker processes that never outlive the process that started them.

``concurrent.futures.ProcessPoolExecutor`` leaves two gaps this closes:
- a worker whose parent is killed (``kill -9``, a dead Jupyter kernel) goes on training
  and then waits for work forever; here each worker asks Linux to end it with its parent;
- Ctrl-C or a failed job makes the pool wait for the running jobs to finish (a
  segmenter can take minutes); here the other workers are stopped at once. Their
  stages are not lost: each resumes from its last checkpoint when called again.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

import torch
from tqdm.auto import tqdm


def run_all(fn: Callable[..., Any], jobs: Sequence[tuple], workers: int, threads: int, desc: str = "jobs") -> list[Any]:
    """``fn(*job)`` for every job, ``workers`` at a time in spawned processes of ``threads`` torch threads each.

    Returns the results in the order of ``jobs``. The first failure (or Ctrl-C) stops
    every worker and is raised here.
    """
    # spawn, not fork: a forked child inherits torch's thread pools in an undefined state
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker, initargs=(threads, os.getpid()))
    try:
        futures = {pool.submit(fn, *job): i for i, job in enumerate(jobs)}
        results: list[Any] = [None] * len(jobs)
        for future in tqdm(as_completed(futures), total=len(futures), desc=desc):
            results[futures[future]] = future.result()
    except BaseException:
        _stop(pool)
        raise
    pool.shutdown()
    return results


def _start_worker(threads: int, parent: int) -> None:
    """Worker start-up: die with the parent (Linux), then use ``threads`` torch threads."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before the line above took effect
            os._exit(1)
    torch.set_num_threads(threads)


def _stop(pool: ProcessPoolExecutor) -> None:
    # The executor has no public way to stop a running job: terminate its processes.
    processes = list((pool._processes or {}).values())
    for process in processes:
        process.terminate()
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.join(10)
