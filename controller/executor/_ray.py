"""The Ray executor: every task a Ray remote function with its declared resources.

``RayExecutor(address)`` connects as ``ray.init`` does: ``None`` starts a
private local instance (``num_cpus``/``num_gpus`` size it) that
:meth:`close` shuts down; ``"auto"`` joins the cluster this machine is part
of; ``"HOST:PORT"`` a cluster's head (GCS address); ``"ray://HOST:PORT"``
a cluster through the Ray client (needs ``ray[client]``). When Ray is
already initialised in this process (e.g. by the caller), that connection is
used and left open.

Each attempt is ``ray.remote(execute).options(num_cpus=cpus,
num_gpus=gpus, memory=memory_mb MiB)``: Ray places it where the resources
are free and sets ``CUDA_VISIBLE_DEVICES`` for GPU tasks; the task sets
torch's threads from ``cpus`` itself, as on the local executor, so both give
the same values. Results are collected by one thread with ``ray.wait`` as
they finish.

Retries: Ray's own task retries are off (``max_retries=0``,
``retry_exceptions=False``) and the base class retries instead, with the same
policy as the local executor: worker or node loss (``WorkerCrashedError``,
``NodeDiedError``, ``ObjectLostError``, Ray's out-of-memory kill, any other
Ray system error) is transient and retried ``max_retries`` times; an
exception from the task's code is permanent. So ``attempts`` is exact and
one retry policy serves both executors.

The workers need ``fleetnas`` (``pip install 'fleetnas[controller]'``) and
the task's dataset path on every node. Importing this module does not import
Ray; creating a :class:`RayExecutor` does (``pip install 'fleetnas[ray]'``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from fleetnas.controller.executor._base import Attempt, Executor, Lost
from fleetnas.controller.executor._results import ResultStore, TaskResult
from fleetnas.controller.executor._tasks import EvalTask, Outcome, execute

_WAIT_S = 0.2  # how long one ray.wait blocks: the delay before a new submission is watched


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ImportError(
            "the Ray executor needs Ray: pip install 'fleetnas[ray]' (or use the local executor)"
        ) from exc
    return ray


class RayExecutor(Executor):
    """Runs tasks as Ray remote functions (see the module docstring).

    ``check_resources``: refuse at submit a task that asks for more CPUs,
    GPUs or memory than the whole cluster has (turn off for an autoscaling
    cluster that grows on demand). ``init_kwargs`` go to ``ray.init``.
    """

    kind = "ray"

    def __init__(
        self,
        address: str | None = None,
        *,
        num_cpus: int | None = None,
        num_gpus: int | None = None,
        max_retries: int = 2,
        on_result: Callable[[TaskResult], None] | None = None,
        store: ResultStore | None = None,
        check_resources: bool = True,
        init_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(max_retries=max_retries, on_result=on_result, store=store)
        if address is not None and (num_cpus is not None or num_gpus is not None):
            raise ValueError(
                f"RayExecutor(address={address!r}): num_cpus/num_gpus size a new local instance "
                "only; a cluster's size is set where it was started (ray start --num-cpus)"
            )
        self._ray = ray = _import_ray()
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            self._init(address, num_cpus, num_gpus, dict(init_kwargs or {}))
        self.address = address
        self.check_resources = check_resources
        self._remote = ray.remote(execute)
        self._state = threading.Lock()  # guards _inflight and _stopping
        self._inflight: dict[Any, Attempt] = {}  # ObjectRef -> attempt
        self._stopping = False
        self._work = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="fleetnas-ray-executor", daemon=True)
        self._thread.start()

    def _init(self, address: str | None, num_cpus: int | None, num_gpus: int | None,
              kwargs: dict[str, Any]) -> None:  # fmt: skip
        kwargs.setdefault("include_dashboard", False)
        kwargs.setdefault("log_to_driver", False)
        try:
            self._ray.init(address=address, num_cpus=num_cpus, num_gpus=num_gpus, **kwargs)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise ConnectionError(
                f"RayExecutor: cannot start or join Ray at address={address!r}: {exc} "
                "(None starts a local instance; 'auto' joins this machine's cluster; "
                "HOST:PORT or ray://HOST:PORT a remote head)"
            ) from exc

    # -- hooks -----------------------------------------------------------------------
    def _check(self, task: EvalTask) -> None:
        if not self.check_resources:
            return
        total = self._ray.cluster_resources()
        need = task.resources
        wants = [("CPU", need.cpus, "CPUs"), ("GPU", need.gpus, "GPUs")]
        if need.memory_mb is not None:
            wants.append(("memory", need.memory_mb * 2**20, "bytes of memory"))
        for key, amount, label in wants:
            have = float(total.get(key, 0.0))
            if amount > have:
                raise ValueError(
                    f"task {task.task_id!r} asks for {amount:g} {label}; the Ray cluster has "
                    f"{have:g} (lower the task's Resources, add nodes, or pass "
                    "check_resources=False for an autoscaling cluster)"
                )

    def _launch(self, attempt: Attempt) -> None:
        need = attempt.task.resources
        options: dict[str, Any] = {
            "num_cpus": need.cpus, "num_gpus": need.gpus, "max_retries": 0,
            "retry_exceptions": False, "name": f"fleetnas-eval:{attempt.task.task_id}",
        }  # fmt: skip
        if need.memory_mb is not None:
            options["memory"] = need.memory_mb * 2**20
        ref = self._remote.options(**options).remote(attempt.task)
        with self._state:
            self._inflight[ref] = attempt
        self._work.set()

    def _abort(self, attempt: Attempt) -> None:
        with self._state:
            refs = [ref for ref, a in self._inflight.items() if a.token == attempt.token]
            for ref in refs:
                del self._inflight[ref]
        for ref in refs:
            self._ray.cancel(ref, force=True)

    def _shutdown(self) -> None:
        with self._state:
            self._stopping = True
            refs, self._inflight = list(self._inflight), {}
        self._work.set()
        if self._thread is not threading.current_thread():
            self._thread.join()
        if self._ray.is_initialized():
            for ref in refs:
                self._ray.cancel(ref, force=True)
            if self._owns_ray:
                self._ray.shutdown()
                self._owns_ray = False

    # -- the collector thread ----------------------------------------------------------
    def _loop(self) -> None:
        try:
            while self._collect_once():
                pass
        except Exception as exc:  # noqa: BLE001 - e.g. Ray shut down under us: fail, never hang
            with self._state:
                self._stopping = True
                attempts, self._inflight = list(self._inflight.values()), {}
            for attempt in attempts:
                self._attempt_finished(
                    attempt, Lost(f"the Ray executor's thread failed: {exc!r}", retry=False)
                )

    def _collect_once(self) -> bool:
        """Wait a moment for finished attempts and report them; False once stopping."""
        with self._state:
            if self._stopping:
                return False
            refs = list(self._inflight)
        if not refs:
            self._work.wait()
            self._work.clear()
            return True
        ready, _ = self._ray.wait(refs, num_returns=1, timeout=_WAIT_S)
        if ready:
            ready, _ = self._ray.wait(refs, num_returns=len(refs), timeout=0)
        for ref in ready:
            with self._state:
                attempt = self._inflight.pop(ref, None)
            if attempt is not None:  # else aborted meanwhile
                self._attempt_finished(attempt, self._outcome(ref))
        return True

    def _outcome(self, ref: Any) -> Outcome | Lost:
        exceptions = self._ray.exceptions
        try:
            outcome = self._ray.get(ref)
        except exceptions.RayTaskError as exc:  # the task's code raised outside execute()
            return Outcome(None, f"{type(exc).__name__}: {_first_line(exc)}", 0.0, "")
        except exceptions.RayError as exc:  # worker or node lost, out of memory, cancelled
            return Lost(f"{type(exc).__name__}: {_first_line(exc)}")
        if not isinstance(outcome, Outcome):
            return Outcome(None, f"the Ray task returned {type(outcome).__name__}", 0.0, "")
        return outcome


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else repr(exc)
