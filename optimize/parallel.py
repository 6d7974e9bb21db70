"""Run independent jobs in forked local processes, one torch thread each (benchmark cells, model selection),
or as tasks of one CPU each on a Ray cluster (:func:`ray_map`, benchmark sweeps beyond one machine).

On this kind of workload (many small GP fits and acquisition evaluations) two one-thread processes beat one
two-thread process several times over. Jobs are closures over the caller's data: the function and its items are
inherited by ``fork``, never pickled; only the results travel back (they must pickle). Results come back in the
order of the items and do not depend on the number of processes.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence, TypeVar

T = TypeVar("T")

_JOB: dict[str, Any] = {}  # the worker process's function and items, set before the fork


def default_workers() -> int:
    """The cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class one_torch_thread:
    """Run torch on one thread inside the block (restored after), so results do not depend on the process."""

    def __enter__(self) -> None:
        import torch

        self.threads = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc) -> None:
        import torch

        torch.set_num_threads(self.threads)


def _init(fn: Callable, items: Sequence) -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    _JOB.update(fn=fn, items=items)


def _run(i: int) -> Any:
    with one_torch_thread():
        return _JOB["fn"](_JOB["items"][i])


def fork_map(
    fn: Callable[[Any], T], items: Sequence, workers: int, on_done: Callable[[int, T], None] | None = None
) -> list[T]:
    """``[fn(item) for item in items]``, in ``workers`` forked processes when > 1 (else here, on one torch
    thread); ``on_done(i, result)`` hears each result as it arrives."""
    if workers <= 1 or len(items) <= 1:
        out = []
        for i, item in enumerate(items):
            with one_torch_thread():
                out.append(fn(item))
            if on_done:
                on_done(i, out[-1])
        return out
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    context = multiprocessing.get_context("fork")
    done: dict[int, T] = {}
    with ProcessPoolExecutor(min(workers, len(items)), context, _init, (fn, items)) as pool:
        futures = {pool.submit(_run, i): i for i in range(len(items))}
        for future in as_completed(futures):
            i = futures[future]
            done[i] = future.result()
            if on_done:
                on_done(i, done[i])
    return [done[i] for i in range(len(items))]


def _one_thread_call(fn: Callable[[Any], T], item: Any) -> T:
    with one_torch_thread():
        return fn(item)


def ray_map(
    fn: Callable[[Any], T], items: Sequence, address: str, on_done: Callable[[int, T], None] | None = None
) -> list[T]:
    """``[fn(item) for item in items]`` as Ray tasks of one CPU and one torch thread each on the cluster at
    ``address`` (``HOST:PORT`` of its head, ``ray://HOST:10001`` through Ray Client, or ``auto``: the cluster
    this machine belongs to); ``on_done(i, result)`` hears each result as it arrives, in the items' order.

    ``fn`` and the items travel by cloudpickle (closures too); what they import must be installed on the
    cluster's nodes (kiln at the same version, e.g. ``pip install -e '.[ray]'`` there). Needs the extra ``ray``.
    """
    try:
        import ray
    except ImportError:
        raise ImportError("--ray-address needs Ray: pip install -e '.[ray]'") from None

    started = not ray.is_initialized()
    if started:
        ray.init(
            address=address,
            runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}},
            log_to_driver=False,
            logging_level="ERROR",
            configure_logging=True,
        )
    try:
        task = ray.remote(num_cpus=1, max_retries=0)(_one_thread_call)
        fn_ref = ray.put(fn)
        refs = [task.remote(fn_ref, item) for item in items]
        index = {ref: i for i, ref in enumerate(refs)}
        done: dict[int, T] = {}
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            i = index[ready[0]]
            done[i] = ray.get(ready[0])
            if on_done:
                on_done(i, done[i])
        return [done[i] for i in range(len(items))]
    finally:
        if started:
            ray.shutdown()
