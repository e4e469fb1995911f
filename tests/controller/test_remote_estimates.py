"""The driver's side of ``--executor``: spec kinds mapped onto executor tasks, options stored.

Fast checks without workers; the end-to-end runs are in ``test_search_executor.py``.
"""

from __future__ import annotations

import random

import pytest

from fleetnas.controller import executor as executor_package
from fleetnas.controller.driver import (
    ESTIMATOR_KINDS,
    ExecutorOptions,
    SearchConfig,
    SearchConfigError,
    Target,
    make_estimator,
    open_executor,
    remote_task_spec,
)
from fleetnas.controller.executor import DatasetRef, EvalTask
from fleetnas.controller.spaces import get_space

SPECS = {"train": "train:digits,epochs=1,max_train_samples=32", "naswot": "naswot",
         "synflow": "synflow", "plugin": "plugin:json:loads", "table": "table:x.csv",
         "supernet": "supernet:digits"}


def test_every_kind_that_maps_names_a_kind_the_executor_builds() -> None:
    mapped = {}
    for name in ESTIMATOR_KINDS.names():
        task = remote_task_spec(SPECS[name])
        if task is not None:
            assert task[0].kind in executor_package.ESTIMATOR_KINDS, name
            mapped[name] = task
    assert set(mapped) == {"train", "naswot", "synflow", "plugin"}  # supernet: _remote_supernet
    estimator, dataset = mapped["train"]
    assert (estimator.kind, dict(estimator.options)) == ("short_training",
                                                         {"epochs": 1, "max_train_samples": 32})
    assert dataset == DatasetRef("digits")
    assert dict(mapped["plugin"][0].options) == {"spec": "json:loads"} and mapped["plugin"][1] is None


def test_a_remote_training_is_the_inline_training() -> None:
    """The task the driver submits builds the estimator ``make_estimator`` builds, on the same data."""
    space = get_space("nb201", {"channels": 4, "cells_per_stage": 1})
    arch = space.sample(random.Random(2))
    spec = "train:digits,epochs=1,max_train_samples=32,max_val_samples=32"
    estimator, dataset = remote_task_spec(spec) or (None, None)
    assert estimator is not None
    task = EvalTask.of("c", space, arch, estimator, dataset=dataset)
    outcome = executor_package.execute(task)  # here, one torch thread, as a worker runs it
    assert outcome.error is None
    assert outcome.value == make_estimator(spec).estimate(space, arch)


def test_executor_options_are_checked_and_stored_with_the_config() -> None:
    config = SearchConfig.build(space="nb201", targets=[Target.device_class("cpu")],
                                accuracy="train:digits", mode="measured", budget=4,
                                executor=ExecutorOptions("ray", ray_address="auto"))
    stored = config.to_dict()
    assert stored["executor"] == {"kind": "ray", "workers": None, "ray_address": "auto",
                                  "max_retries": 2, "trial_cpus": 1.0, "trial_gpus": 0.0}
    assert SearchConfig.from_dict(stored) == config
    plain = SearchConfig.build(space="nb201", targets=[Target.device_class("cpu")], budget=4)
    assert "executor" not in plain.to_dict() and SearchConfig.from_dict(plain.to_dict()).executor is None
    for bad, message in [(("dask",), "choose one of local, ray"), (("local", 0), "--workers 0"),
                         (("local", None, "auto"), "--ray-address needs --executor ray"),
                         (("ray", 2, "auto"), "drop --workers")]:
        with pytest.raises(SearchConfigError, match=message):
            ExecutorOptions(*bad)  # type: ignore[arg-type]


def test_a_ray_address_for_an_inline_search_is_refused() -> None:
    with pytest.raises(SearchConfigError, match="started without --executor ray"):
        with open_executor(None, None, ray_address="auto"):
            pass
    with pytest.raises(SearchConfigError, match="uses the local executor"):
        with open_executor(ExecutorOptions("local", 1), None, ray_address="auto"):
            pass
