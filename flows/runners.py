"""Task runners as a setting: where candidate training and search trials run.

- ``serial``: tasks are called one after another in the flow's own process (every core for each model,
  and the latency guardrail is measured with no sibling training next to it);
- ``threads``: Prefect's ``ThreadPoolTaskRunner`` with ``workers`` threads (models keep their own RNGs,
  so results equal a serial run's);
- ``dask``: ``prefect_dask.DaskTaskRunner`` -- a local cluster of ``workers`` single-threaded worker
  processes, or the scheduler at ``address`` (a cluster that carries a hyperparameter search).
"""

from __future__ import annotations

from typing import Any

from prefect.task_runners import ThreadPoolTaskRunner


def make_task_runner(kind: str, workers: int = 2, address: str | None = None) -> Any:
    """The Prefect task runner for ``kind`` (``serial`` gets a one-thread pool: tasks run in order)."""
    if kind == "serial":
        return ThreadPoolTaskRunner(max_workers=1)
    if kind == "threads":
        return ThreadPoolTaskRunner(max_workers=workers)
    if kind == "dask":
        try:
            from prefect_dask import DaskTaskRunner
        except ImportError as exc:  # pragma: no cover - a declared dependency
            raise RuntimeError("runner 'dask' needs prefect-dask: pip install prefect-dask") from exc
        if address:
            return DaskTaskRunner(address=address)
        return DaskTaskRunner(
            cluster_kwargs={
                "n_workers": workers,
                "threads_per_worker": 1,
                "processes": True,
                "dashboard_address": None,
            }
        )
    raise ValueError(f"unknown task runner {kind!r}; use serial, threads or dask")
