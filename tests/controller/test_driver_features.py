"""The hybrid driver's shared computations give what computing afresh gives: the feature
matrix the predictors of a step share, and the surrogate's remembered spacing."""

from __future__ import annotations

import random

import numpy as np

from fleetnas.controller.driver._features import FeatureCache
from fleetnas.controller.driver._predict import SurrogateValuePredictor, feature_matrix
from fleetnas.controller.driver._surrogate import arch_features, shared_spacing, spacing
from fleetnas.controller.spaces import NB201Space

SPACE = NB201Space()


def test_rows_are_the_archs_features_and_shared_only_for_the_same_archs() -> None:
    rng = random.Random(0)
    archs = [SPACE.sample(rng) for _ in range(150)]  # past the first 64 slots
    cache = FeatureCache(SPACE)
    first = cache.rows(archs)
    assert np.array_equal(first, np.asarray([arch_features(SPACE, a) for a in archs]))
    assert cache.rows(archs) is first  # the same archs: the same matrix
    assert not first.flags.writeable
    other = cache.rows(archs[::-1])
    assert np.array_equal(other, first[::-1])
    assert cache.rows(archs[:5]).shape == (5, first.shape[1])


def test_predictions_with_the_cache_equal_those_from_plain_rows() -> None:
    rng = random.Random(1)
    archs = [SPACE.sample(rng) for _ in range(60)]
    latency = [0.1 + 0.01 * sum(SPACE.features(a)) * rng.uniform(0.9, 1.1) for a in archs]
    cache = FeatureCache(SPACE)

    def plain(arch: object) -> list[float]:
        return arch_features(SPACE, arch)

    shared = SurrogateValuePredictor(cache, relative=True, z=2.0, min_margin=0.01)
    fresh = SurrogateValuePredictor(plain, relative=True, z=2.0, min_margin=0.01)
    for predictor in (shared, fresh):
        predictor.fit(archs[:40], latency[:40])
    assert shared.predict(archs[40:]) == fresh.predict(archs[40:])
    assert shared.values(archs[40:]) == fresh.values(archs[40:])
    assert np.array_equal(feature_matrix(plain, archs), feature_matrix(cache, archs))


def test_shared_spacing_is_spacing_on_random_rows_with_duplicates() -> None:
    rng = np.random.default_rng(0)
    for n in (1, 2, 5, 40, 300):
        rows = rng.normal(size=(n, 6)).round(1)  # rounded: duplicate rows
        assert shared_spacing(rows) == spacing(rows)
        assert shared_spacing(rows) == spacing(rows)  # remembered
        changed = rows.copy()
        changed[-1, 0] += 1.0
        assert shared_spacing(changed) == spacing(changed)
