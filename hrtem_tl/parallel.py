"""Independent tasks through Dask: a local cluster by default, an existing cluster by address, or in-process.

Each local worker is a process with one thread (and one FFTW/BLAS thread): on this 2-core machine two
single-threaded processes run the multislice ~2x faster than one two-threaded one.
"""

from __future__ import annotations

import os

from tqdm.auto import tqdm

SINGLE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def n_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def run_tasks(func, items: list, kwargs: dict, scheduler: str | None = None, desc: str = "tasks",
              progress: bool = True, gpu: bool = False, n_workers: int | None = None, describe=None) -> list:
    """``[func(item, **kwargs) for item in items]`` through Dask; results in completion order.

    ``describe(result)`` (optional) gives the progress bar's postfix after each finished task.

    ``scheduler``: None (local cluster, one single-threaded process per core, or one worker per GPU),
    ``"synchronous"`` (this process), or the address of a running Dask scheduler (``tcp://host:8786``).
    """
    if not items:
        return []
    bar = tqdm(total=len(items), desc=desc, disable=not progress)
    if scheduler == "synchronous":
        out = []
        for item in items:
            out.append(func(item, **kwargs))
            _advance(bar, describe, out[-1])
        bar.close()
        return out
    from dask.distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler is None:
        workers = n_workers or (1 if gpu else min(n_cores(), len(items)))
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                               env=SINGLE_THREAD_ENV)
        client = Client(cluster)
    else:
        client = Client(scheduler)
    try:
        futures = [client.submit(func, item, pure=False, **kwargs) for item in items]
        out = []
        for fut in as_completed(futures):
            out.append(fut.result())
            _advance(bar, describe, out[-1])
        return out
    finally:
        bar.close()
        client.close()
        if cluster is not None:
            cluster.close()


def _advance(bar, describe, result) -> None:
    if describe is not None:
        bar.set_postfix_str(describe(result), refresh=False)
    bar.update()
