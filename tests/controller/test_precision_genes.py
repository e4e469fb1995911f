"""Precision genes without devices: the PrecisionSpace wrapper, target keys, config storage.

The wrapper's contract (``controller/spaces/_precision.py``): every operator
keeps each target's gene among its allowed precisions, a mutation changes
something, encodings round-trip, and everything about the network is the
wrapped space's.
"""

from __future__ import annotations

import random

import pytest

from fleetnas.controller.driver import (
    UNKNOWN_NOTE,
    SearchConfig,
    SearchConfigError,
    Target,
    accuracy_note,
    calibration_source,
    parse_target,
    search_space,
)
from fleetnas.controller.spaces import (
    PrecisionArch,
    PrecisionSpace,
    UnknownArch,
    get_space,
    split_precision_genes,
)

BASE = get_space("nb201", {"channels": 4, "cells_per_stage": 1})
GENES = {"pi4": ("int8", "fp32"), "x86": ("fp32",), "gpu": ("fp32", "fp16", "int8")}


def _space() -> PrecisionSpace:
    return PrecisionSpace(BASE, GENES)


def test_operators_keep_each_gene_among_its_allowed_precisions() -> None:
    space, rng = _space(), random.Random(3)
    archs = [space.sample(rng) for _ in range(40)]
    for _ in range(60):
        a, b = rng.sample(archs, 2)
        child = space.crossover(a, b, rng)
        assert all(g in (x, y) for g, x, y in zip(child.precisions, a.precisions, b.precisions,
                                                  strict=True))
        mutant = space.mutate(child, rng)
        assert mutant != child
        archs.append(mutant)
    for arch in archs:
        genes = space.genes_of(arch)
        assert all(genes[k] in allowed for k, allowed in GENES.items())
        assert space.decode(space.encode(arch)) == arch
    seen = {p for a in archs for p in a.precisions}
    assert seen == {"int8", "fp32", "fp16"}
    assert {space.genes_of(a)["x86"] for a in archs} == {"fp32"}
    assert any(space.mutate(a, rng).arch == a.arch for a in archs[:30] for _ in range(3))


def test_the_network_is_the_wrapped_spaces() -> None:
    space, rng = _space(), random.Random(0)
    arch = space.sample(rng)
    assert space.identity() == BASE.identity()
    assert space.network_identity() == BASE.network_identity()
    assert space.count_params(arch) == BASE.count_params(arch.arch)
    assert space.blocks(arch) == BASE.blocks(arch.arch)
    assert space.size() == BASE.size() * 2 * 1 * 3  # type: ignore[operator]
    assert len(space.features(arch)) == len(BASE.features(arch.arch)) + 3
    text = space.encode(arch)
    base, genes = split_precision_genes(text)
    assert base == BASE.encode(arch.arch) and list(genes) == ["pi4", "x86", "gpu"]
    assert split_precision_genes(base) == (base, {})


def test_decode_refuses_genes_outside_the_allowed_set() -> None:
    space = _space()
    base = BASE.encode(BASE.sample(random.Random(1)))
    with pytest.raises(UnknownArch, match="not allowed on x86"):
        space.decode(f"{base}@pi4=int8,x86=int8,gpu=fp32")
    with pytest.raises(UnknownArch, match="expected precision genes"):
        space.decode(f"{base}@pi4=int8")
    with pytest.raises(UnknownArch):
        space.decode(base)
    with pytest.raises(UnknownArch):
        space.encode(BASE.sample(random.Random(1)))
    with pytest.raises(ValueError, match="distinct"):
        PrecisionSpace(BASE, {"a": ("fp32", "fp32")})


def test_target_precision_key_and_config_round_trip() -> None:
    pi4 = parse_target("pi4:threads=1,precision=INT8|fp32", "device")
    assert pi4.precisions == ("int8", "fp32") and pi4.request().intra_op_threads == 1
    assert "precision=int8|fp32" in pi4.describe()
    config = SearchConfig.build(space="nb201", targets=[pi4, Target.device_class("cpu")],
                                precisions="fp32,int8-dyn", mode="measured",
                                calibration="cal.npz")
    assert config.precision_genes() == {"pi4": ("int8", "fp32"), "cpu": ("fp32", "int8-dynamic")}
    assert SearchConfig.from_dict(config.to_dict()) == config
    assert calibration_source(config) == "cal.npz"
    wrapped = search_space(BASE, config)
    assert isinstance(wrapped, PrecisionSpace) and search_space(wrapped, config) is wrapped
    assert UNKNOWN_NOTE in (accuracy_note(config) or "")  # naswot, the default, is blind
    with pytest.raises(SearchConfigError, match="unknown precision 'int4'"):
        parse_target("pi4:precision=int4", "device")
    with pytest.raises(SearchConfigError, match="names fp32 twice"):
        SearchConfig.build(space="nb201", targets=[pi4], precisions="fp32,fp32")


def test_fp32_only_is_the_search_of_before() -> None:
    config = SearchConfig.build(space="nb201", targets=[Target.device("a", precisions=["fp32"])],
                                mode="lut", objectives=["params"], accuracy="train:digits")
    assert config.precision_genes() == {} and accuracy_note(config) is None
    assert search_space(BASE, config) is BASE
    assert calibration_source(config) == "digits"  # a train:DATA estimator's data
    arch = PrecisionArch(BASE.sample(random.Random(0)), ("fp32",))
    assert arch.precisions == ("fp32",)


def test_only_a_deployable_estimator_scores_the_deployed_models() -> None:
    from fleetnas.controller.accuracy import (
        DeployableEstimator,
        NaswotEstimator,
        ShortTrainingEstimator,
        load_dataset,
    )
    from fleetnas.controller.accuracy.supernet import StoredSupernetEstimator
    from fleetnas.controller.driver import DEPLOYED_NOTE, DeployedScorer, deployed_accuracy_for

    pi4 = Target.device("pi4", precisions=["int8", "fp32"])

    def config(accuracy: str, targets: list[Target]) -> SearchConfig:
        return SearchConfig.build(space="nb201", targets=targets, mode="measured",
                                  accuracy=accuracy, objectives=["accuracy", "latency[pi4]"])

    trained = config("train:digits,epochs=1", [pi4])
    assert accuracy_note(trained) == DEPLOYED_NOTE
    estimator = ShortTrainingEstimator(load_dataset("digits"))
    scorer = deployed_accuracy_for(trained, estimator)
    assert isinstance(scorer, DeployedScorer) and scorer.deployed.db is None
    assert scorer.deployed.calibration == "digits"  # the measurement side's calibration
    # no genes: the estimator's own score; a proxy: the fp32 network's, and the note says so
    assert deployed_accuracy_for(config("train:digits", [Target.device("pi4")]), estimator) is None
    assert deployed_accuracy_for(config("naswot", [pi4]), NaswotEstimator()) is None
    for proxy in ("naswot", "synflow", "plugin:m:f", "table:t.csv"):
        note = accuracy_note(config(proxy, [pi4])) or ""
        assert "of the fp32 network" in note and UNKNOWN_NOTE in note
    # a supernet materialises its subnet: scored as deployed, calibrated on its data
    supernet = config("supernet:digits,epochs=1", [pi4])
    assert accuracy_note(supernet) == DEPLOYED_NOTE
    assert calibration_source(supernet) == "digits"
    stored = StoredSupernetEstimator.from_options("digits", {"epochs": 1})
    assert isinstance(stored, DeployableEstimator)
    assert isinstance(deployed_accuracy_for(supernet, stored), DeployedScorer)
    # an accuracy constraint a blind estimator cannot check is refused, naming the fix
    with pytest.raises(SearchConfigError, match="train:DATA or supernet:DATA"):
        SearchConfig.build(space="nb201", targets=[pi4], mode="measured", accuracy="naswot",
                           objectives=["latency[pi4]"], constraints=["accuracy >= 0.5"],
                           budget=2).validate()
    SearchConfig.build(space="nb201", targets=[pi4], mode="measured",
                       accuracy="supernet:digits", objectives=["latency[pi4]"],
                       constraints=["accuracy >= 0.5"], budget=2).validate()
