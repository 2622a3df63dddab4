"""Grading on a Dask distributed cluster (``nnderive serve --cluster ADDRESS``; the ``cluster`` extra).

Each task carries the problem's spec text and one answer set.  On the Dask worker the problem is
built and warmed up once per spec (kept by the hash of its text), then the answer set is graded by the same
function as on one machine (:func:`derive.serve.course.grade_answers`): numbers in one forked
sandboxed worker, each LaTeX answer in another, with the same time and memory limits.  Forking needs
non-daemonic Dask worker processes: start workers with ``distributed.worker.daemon: false``
(``DASK_DISTRIBUTED__WORKER__DAEMON=False``), as :func:`local_cluster` does.
"""
from __future__ import annotations

from derive.serve.course import Source

_BUILT: dict[str, str] = {}     # spec hash -> version key registered in course._LOADED (per Dask worker)


def grade_remote(source: Source, answers: dict, limits: tuple[float, float, int]) -> dict:
    """Run on a Dask worker: the graded answer set, as :func:`grade_answers` gives it locally."""
    from derive.grading.submissions import warm_up
    from derive.grading.grade import Problem
    from derive.kinds import loads
    import derive.serve.course as course
    key = f"dask:{source.digest}"
    if source.digest not in _BUILT:
        problem = Problem.build(loads(source.text, fmt=source.fmt, name=source.name))
        warm_up(problem)       # caches warm here, so that every sandboxed worker forked from here starts warm
        course._LOADED[key] = problem
        _BUILT[source.digest] = key
    timeout, latex_timeout, memory_mb = limits
    return course.grade_answers(key, answers, timeout=timeout, latex_timeout=latex_timeout, memory_mb=memory_mb)


class DaskExecutor:
    """Sends each answer set to the cluster at ``address`` (or an existing ``distributed.Client``)."""

    def __init__(self, address):
        try:
            from distributed import Client
        except ImportError:
            raise RuntimeError("grading on a cluster needs the 'cluster' extra: pip install 'nnderive[cluster]'") \
                from None
        self.client = address if isinstance(address, Client) else Client(address, timeout="30s")

    def grade(self, source: Source, answers: dict, limits: tuple[float, float, int]) -> dict:
        return self.client.submit(grade_remote, source, answers, limits, pure=False).result()

    def grade_many(self, source: Source, answer_sets: list[dict], limits: tuple[float, float, int]) -> list[dict]:
        futures = self.client.map(grade_remote, [source] * len(answer_sets), answer_sets,
                                  [limits] * len(answer_sets), pure=False)
        return self.client.gather(futures)

    def close(self) -> None:
        self.client.close()


def local_cluster(workers: int = 2):
    """A LocalCluster whose worker processes may fork sandboxed graders (for tests and trials)."""
    import dask
    from distributed import LocalCluster
    with dask.config.set({"distributed.worker.daemon": False}):
        return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                            host="127.0.0.1")
