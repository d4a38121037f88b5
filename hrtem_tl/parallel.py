"""Independent tasks through Dask: a local cluster by default, an existing cluster by address, or in-process.

Each local worker is a process with one thread (and one FFTW/BLAS thread): on this 2-core machine two
single-threaded processes run the multislice ~2x faster than one two-threaded one. ``session`` keeps one cluster
for several stages (the book job starts it once); outside a session each ``run_tasks`` call starts its own.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager

from tqdm.auto import tqdm

SINGLE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
# Dask starts its workers with MALLOC_TRIM_THRESHOLD_=65536, which also switches off glibc's adaptive mmap
# threshold: every buffer above 128 KiB (each minibatch's activations) is then mapped and unmapped afresh.
# Without it (the environment below replaces Dask's), glibc keeps them in its heap.
_SESSION: dict = {}
# a worker that dies (a segfault, the out-of-memory killer) fails its task at once: Dask's default retries it on
# the next worker (3 times), which crashes in turn and restarts in a loop before the run fails
DASK_CONFIG = {"distributed.nanny.pre-spawn-environ": dict(SINGLE_THREAD_ENV),
               "distributed.scheduler.allowed-failures": 0}


class WorkerDied(RuntimeError):
    """A worker process died while it ran a task (its one-line message names the task)."""


def n_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _start(scheduler: str | None, n_workers: int):
    """(client, cluster or None) for a scheduler address, or a new local cluster of ``n_workers``."""
    import dask
    from dask.distributed import Client, LocalCluster

    if scheduler is not None:
        return Client(scheduler), None
    with dask.config.set(DASK_CONFIG):
        # workers print only CRITICAL: a task's error reaches the client as its exception, and the heartbeat
        # "Failed to communicate with scheduler" traceback that a worker may log while the cluster closes is noise.
        # No dashboard, and the scheduler's own HTTP server on a free port: two clusters on one machine (two books,
        # a test beside a book) then do not collide on port 8787 and warn on the terminal
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                               scheduler_kwargs={"dashboard": False},
                               env=SINGLE_THREAD_ENV, silence_logs=logging.CRITICAL)
    return Client(cluster), cluster


def _stop(client, cluster) -> None:
    client.close()
    if cluster is not None:
        cluster.close()


@contextmanager
def session(scheduler: str | None = None, gpu: bool = False):
    """One Dask client for every ``run_tasks`` inside the block (``"synchronous"``: none, all in-process)."""
    if scheduler == "synchronous" or _SESSION:
        yield
        return
    client, cluster = _start(scheduler, 1 if gpu else n_cores())
    _SESSION.update(client=client)
    try:
        yield
    finally:
        _SESSION.clear()
        _stop(client, cluster)


def progress_bar(total: int, desc: str, progress: bool = True, unit: str = "it") -> tqdm:
    """The stage's progress bar: counts, rate and time left; off when ``progress`` is False."""
    return tqdm(total=total, desc=desc, unit=unit, disable=not progress, dynamic_ncols=True)


def run_tasks(func, items: list, kwargs: dict, scheduler: str | None = None, desc: str = "tasks",
              progress: bool = True, gpu: bool = False, n_workers: int | None = None, describe=None,
              bar: tqdm | None = None, unit: str = "it", size=None, name=repr) -> list:
    """``[func(item, **kwargs) for item in items]`` through Dask; results in completion order.

    ``describe(result)`` (optional) gives the progress bar's postfix after each finished task; ``bar`` is a bar
    to advance instead of a new one (a stage that spans several calls); ``size(item)`` how many units an item
    counts for on the bar (default 1); ``name(item)`` names it in the one-line error of a worker that died
    (:class:`WorkerDied`).

    ``scheduler``: None (the session's client, else a local cluster: one single-threaded process per core, or one
    worker per GPU), ``"synchronous"`` (this process), or the address of a running Dask scheduler.
    """
    if not items:
        return []
    own_bar = bar is None
    weight = size or (lambda item: 1)
    bar = progress_bar(sum(map(weight, items)), desc, progress, unit) if own_bar else bar
    try:
        if scheduler == "synchronous":
            out = []
            for item in items:
                out.append(func(item, **kwargs))
                _advance(bar, describe, out[-1], weight(item))
            return out
        from dask.distributed import KilledWorker, as_completed

        if _SESSION and scheduler is None:
            client, cluster = _SESSION["client"], None
        else:
            client, cluster = _start(scheduler, n_workers or (1 if gpu else min(n_cores(), len(items))))
        futures = []
        try:
            futures = [client.submit(func, item, pure=False, **kwargs) for item in items]
            item_of = {fut.key: item for fut, item in zip(futures, items)}
            out = []
            for fut in as_completed(futures):
                try:
                    out.append(fut.result())
                except KilledWorker:
                    raise WorkerDied(
                        f"{desc}: the worker process running {name(item_of[fut.key])} died (a crash or the memory "
                        f"limit; nothing of it was written); rerun to retry, or add --scheduler synchronous to see "
                        f"the crash in this process") from None
                _advance(bar, describe, out[-1], weight(item_of[fut.key]))
            return out
        except BaseException:
            client.cancel(futures)  # nothing keeps running after an error or Ctrl-C
            raise
        finally:
            if client is not _SESSION.get("client"):
                _stop(client, cluster)
    finally:
        if own_bar:
            bar.close()


def _advance(bar, describe, result, units: int = 1) -> None:
    if describe is not None:
        bar.set_postfix_str(describe(result), refresh=False)
    bar.update(units)
