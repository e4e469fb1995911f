"""A search's supernet on an executor: trained once as one task, then one task per candidate.

With ``--accuracy supernet:DATA[,...]`` and ``--executor local|ray``,
:func:`supernet_estimates` replaces the inline
:meth:`~fleetnas.controller.accuracy.supernet.StoredSupernetEstimator.prepare`
and estimates with executor tasks (:mod:`fleetnas.controller.executor`):

1. **Training.** When the supernet store (``supernets/`` beside the cost DB)
   has no complete supernet of (space, dataset hash, training config), one
   ``supernet_train`` task trains it there on a worker, resuming the
   per-epoch checkpoint an interrupted run left; the store's lock makes
   concurrent trainings of one supernet train it once. The task's value is
   the largest subnet's accuracy. It is submitted when the driver is built
   and runs while the first step's devices measure: candidates submitted
   before it finishes wait here, and go to the executor once it has (at the
   next submission, or when the step collects its estimates).
   The training is not kept in ``evaluations.db`` (the supernet store is its
   record): a killed search's training resumes from its last finished epoch.
2. **Scoring.** Each candidate is a ``supernet`` task (kind ``supernet``) on
   the stored supernet, by key: the worker loads it once (its estimator
   cache) and scores each subnet with BN recalibration, the value saved in
   ``evaluations.db`` as it finishes, retried like any task
   (:class:`~._remote.RemoteEstimates`).

Resources: the training task and every scoring task declare ``resources``
(``--trial-cpus`` / ``--trial-gpus``; default one CPU); torch trains on
that many threads.

A failed training stops the search (:class:`~._errors.SearchAborted`): no
candidate can be scored, and resuming retries it. The workers must see the
store at the driver's path: on a multi-node cluster, keep the cost DB's
folder (or at least ``supernets/``) on storage every node mounts.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from fleetnas.controller.driver._accuracy import estimator_kind, supernet_data
from fleetnas.controller.driver._candidates import CandidateState
from fleetnas.controller.driver._errors import SearchAborted
from fleetnas.controller.driver._remote import RemoteEstimates

if TYPE_CHECKING:
    from fleetnas.controller.accuracy import AccuracyEstimator
    from fleetnas.controller.accuracy.supernet import Manifest, StoredSupernetEstimator
    from fleetnas.controller.executor import (
        DatasetRef,
        Executor,
        Resources,
        TaskHandle,
        TaskResult,
    )
    from fleetnas.controller.spaces import SearchSpace

#: seconds between looks at the training's manifest while the search waits for it
POLL_S = 0.5


def supernet_estimates(executor: Executor | None, spec: str | None,
                       estimator: AccuracyEstimator | None, space: SearchSpace,
                       workdir: Path | None, on_value: Callable[[CandidateState], None],
                       report: Callable[[str, str], None], *,
                       resources: Resources | None = None) -> SupernetEstimates | None:
    """The executor's side of a ``supernet:`` search (None: no executor, or another kind);
    the training and every scoring task declare ``resources`` (default: one CPU)."""
    from fleetnas.controller.accuracy.supernet import StoredSupernetEstimator

    if executor is None or spec is None or not isinstance(estimator, StoredSupernetEstimator):
        return None
    _, argument = estimator_kind(spec)
    return SupernetEstimates(executor, space, estimator, supernet_data(spec, argument), workdir,
                             on_value=on_value, report=report, resources=resources)


class SupernetEstimates(RemoteEstimates):
    """A supernet search's estimates on ``executor`` (see the module docstring). One thread.

    ``notes`` says what was found in the store; ``training`` is the training
    task's result once it finished (None: none ran, or not yet), its
    ``worker`` the ``host:pid`` that trained.
    """

    def __init__(self, executor: Executor, space: SearchSpace, estimator: StoredSupernetEstimator,
                 data: str, workdir: Path | None, *,
                 on_value: Callable[[CandidateState], None] = lambda state: None,
                 report: Callable[[str, str], None] = lambda phase, detail: None,
                 resources: Resources | None = None) -> None:
        from fleetnas.controller.accuracy.supernet import SupernetStore, resolved, store_root
        from fleetnas.controller.executor import DatasetRef, EstimatorSpec

        self.store = SupernetStore(store_root(workdir).resolve())
        config = resolved(estimator.train_config, space)
        self.key = self.store.key(space, estimator.dataset, config)
        dataset = DatasetRef(data)
        scoring = EstimatorSpec("supernet", {"store": str(self.store.root), "supernet": self.key,
                                             "eval_config": estimator.eval_config.to_dict()})
        super().__init__(executor, space, scoring, dataset, on_value, resources=resources)
        self.report = report
        self.training: TaskResult | None = None
        self._handle: TaskHandle | None = None
        self._queued: dict[int, tuple[CandidateState, str]] = {}
        before = self._manifest()
        where = f"in {self.store.root}"
        if before is not None and before.complete:
            self.notes = [f"supernet {self.key} (reused: {before.epochs_done} epochs on "
                          f"{before.dataset['name']}; validation accuracy {_accuracy(before)}) {where}"]
            return
        self._handle = self._submit_training(space, estimator, dataset, resources)
        how = (f"resuming at epoch {before.epochs_done}/{before.epochs}" if before is not None
               else f"{config.epochs} epochs on {estimator.dataset.name}")
        self.notes = [f"supernet {self.key} ({how}) trains as one task on the {executor.kind} "
                      f"executor, {where}"]

    def _submit_training(self, space: SearchSpace, estimator: StoredSupernetEstimator,
                         dataset: DatasetRef, resources: Resources | None) -> TaskHandle:
        from fleetnas.controller.accuracy.supernet import build_supernet, resolved
        from fleetnas.controller.executor import EstimatorSpec, EvalTask

        config = resolved(estimator.train_config, space)
        largest = build_supernet(space, estimator.dataset.num_classes, config).largest()
        spec = EstimatorSpec("supernet_train", {
            "store": str(self.store.root), "train_config": config.to_dict(),
            "eval_config": estimator.eval_config.to_dict()})  # fmt: skip
        task = EvalTask.of(f"supernet-{self.key}", space, largest, spec, dataset=dataset,
                           resources=resources)
        return self.executor.submit(task)

    def _manifest(self) -> Manifest | None:
        from fleetnas.controller.accuracy.supernet import SupernetError, SupernetNotFound

        try:
            return self.store.manifest(self.key)
        except SupernetNotFound:
            return None
        except SupernetError:  # being rewritten, or broken: the training task will say
            return None

    # -- RemoteEstimates -------------------------------------------------------------------
    def submit(self, state: CandidateState, source: str) -> None:
        """Start ``state``'s estimate, or keep it until the supernet is trained."""
        if self._training_done():
            super().submit(state, source)
        else:
            self._queued.setdefault(state.id, (state, source))

    @property
    def waiting(self) -> int:
        return super().waiting + len(self._queued)

    def settle(self) -> None:
        """Wait for the training (if it runs), then for every submitted estimate."""
        if self._handle is not None and self.training is None:
            self._wait_for_training(self._handle)
        self._training_done()
        super().settle()

    # -- the training ----------------------------------------------------------------------
    def _training_done(self) -> bool:
        """Whether the supernet can be scored now; submits the candidates kept meanwhile.
        SearchAborted (every time) once the training failed."""
        if self._handle is None:
            return True
        if self.training is None:
            if not self._handle.done():
                return False
            self.training = self._handle.result()
            if self.training.ok:
                self.report("estimate", f"supernet {self.key} trained on the "
                            f"{self.executor.kind} executor by {self.training.worker} in "
                            f"{self.training.seconds:.1f} s (largest subnet "
                            f"{self.training.value:.3f})")
        if not self.training.ok:
            raise SearchAborted(self._failure(self.training))
        queued, self._queued = list(self._queued.values()), {}
        for state, source in queued:
            super().submit(state, source)
        return True

    def _wait_for_training(self, handle: TaskHandle) -> None:
        epochs = -1
        while True:
            try:
                handle.result(timeout=POLL_S)
                return
            except TimeoutError:
                manifest = self._manifest()
                if manifest is not None and manifest.epochs_done != epochs:
                    epochs = manifest.epochs_done
                    self.report("estimate", f"supernet training on the {self.executor.kind} "
                                f"executor: epoch {epochs}/{manifest.epochs} done")

    def _failure(self, result: TaskResult) -> str:
        tries = f"{result.attempts} attempt{'s' if result.attempts != 1 else ''}"
        return (f"supernet {self.key}: training failed on the {self.executor.kind} executor "
                f"({result.failure} failure, {tries}): {result.error}; fix the cause and resume "
                "the search (the training resumes from its last finished epoch)")


def _accuracy(manifest: Manifest) -> str:
    return ", ".join(f"{k} subnet {v:.3f}" for k, v in (manifest.accuracy or {}).items()) or "-"
