"""Accuracy estimators on small torch models and on the real NAS-Bench-201 space."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Sequence
from typing import Any

import pytest
import torch
from torch import nn

from fleetnas.controller.accuracy import (
    EstimatorError,
    NaswotEstimator,
    PluginError,
    PluginEstimator,
    ShortTrainingEstimator,
    SynflowEstimator,
    fit_head,
    load_digits,
    naswot_score,
    synflow_score,
    synthetic_dataset,
)
from fleetnas.controller.search import NSGA2Strategy, SearchEngine
from fleetnas.controller.spaces import Block, MobileNetV3Space, NB201Space, SearchSpace, UnknownArch

ModelFactory = Callable[[], nn.Module]


class ModuleSpace(SearchSpace):
    """Archs are names of model factories; ``build`` calls the factory."""

    name = "modules"

    def __init__(self, factories: dict[str, ModelFactory], shape: Sequence[int] = (1, 1, 8, 8)):
        self.factories = factories
        self.shape = tuple(shape)

    def sample(self, rng: random.Random) -> str:
        return rng.choice(sorted(self.factories))

    def mutate(self, arch: Any, rng: random.Random) -> str:
        return rng.choice([a for a in sorted(self.factories) if a != arch])

    def crossover(self, a: Any, b: Any, rng: random.Random) -> str:
        return rng.choice([a, b])

    def encode(self, arch: Any) -> str:
        return str(arch)

    def decode(self, text: str) -> str:
        if text not in self.factories:
            raise UnknownArch(text)
        return text

    def features(self, arch: Any) -> Sequence[float]:
        return [float(sorted(self.factories).index(arch))]

    def count_params(self, arch: Any) -> int:
        return sum(p.numel() for p in self.build(arch).parameters())

    def count_flops(self, arch: Any) -> int:
        return 0

    def input_shape(self, arch: Any) -> tuple[int, ...]:
        return self.shape

    def build(self, arch: Any) -> Any:
        return self.factories[arch]().eval()

    def blocks(self, arch: Any) -> list[Block]:
        return [Block.of("model", name=arch)]

    def build_block(self, block: Block) -> tuple[Any, tuple[int, ...]]:
        return self.build(block.param("name")), self.shape

    def all_blocks(self) -> list[Block]:
        return [Block.of("model", name=a) for a in sorted(self.factories)]


def small_cnn(classes: int = 10, channels: int = 1) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(channels, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(64, classes),
    )


class DeadReLU(nn.Module):
    """Every ReLU input is -1: one activation code for every input."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 16, 3, padding=1)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.bias.fill_(-1.0)
        self.relu = nn.ReLU()
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(16 * 64, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.relu(self.conv(x)))


class Disconnected(nn.Module):
    """The output ignores the weights of the body (like NAS-Bench-201 with ``none`` everywhere)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Conv2d(1, 8, 3, padding=1, bias=False)
        self.head = nn.Linear(8, 10, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x).mean(dim=(2, 3)) * 0.0)


def plugin_score(space: SearchSpace, arch: Any) -> float:
    """A plugin for the PluginEstimator tests: the arch's parameter count."""
    return float(space.count_params(arch))


def plugin_text(space: SearchSpace, arch: Any) -> str:
    return "not a number"


NOT_CALLABLE = 3

SPACE = ModuleSpace(
    {
        "cnn": small_cnn,
        "dead": DeadReLU,
        "disconnected": Disconnected,
        "wide_head": lambda: small_cnn(classes=1000),
        "narrow_head": lambda: small_cnn(classes=4),
        "no_linear": lambda: nn.Sequential(nn.Conv2d(1, 12, 8), nn.Flatten()),
        "too_few_logits": lambda: nn.Sequential(nn.Conv2d(1, 3, 8), nn.Flatten()),
        "no_activation": lambda: nn.Sequential(nn.Flatten(), nn.Linear(64, 10)),
    }
)


class TestNaswot:
    def test_distinct_patterns_beat_a_degenerate_net(self) -> None:
        estimator = NaswotEstimator(batch_size=16, seed=0)
        good = estimator.estimate(SPACE, "cnn")
        dead = estimator.estimate(SPACE, "dead")
        # one code for all 16 inputs over 1024 units: K + I has eigenvalues 1 + 16*1024 and 1
        assert dead == pytest.approx(math.log(1 + 16 * 1024))
        assert good > dead + 50.0

    def test_deterministic_and_leaves_the_global_rng_alone(self) -> None:
        before = torch.get_rng_state()
        a = NaswotEstimator(batch_size=8, seed=1).estimate(SPACE, "cnn")
        assert torch.equal(torch.get_rng_state(), before)
        assert NaswotEstimator(batch_size=8, seed=1).estimate(SPACE, "cnn") == a
        assert NaswotEstimator(batch_size=8, seed=2).estimate(SPACE, "cnn") != a

    def test_scores_a_real_data_batch(self) -> None:
        data = synthetic_dataset(seed=0)
        with_data = NaswotEstimator(batch_size=16, data=data).estimate(SPACE, "cnn")
        with_noise = NaswotEstimator(batch_size=16).estimate(SPACE, "cnn")
        assert math.isfinite(with_data) and with_data != with_noise

    def test_kernel_matches_a_direct_computation(self) -> None:
        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(5, 7), nn.ReLU())
        x = torch.randn(6, 5)
        codes = (net[0](x) > 0).double()
        kernel = codes @ codes.T + (1 - codes) @ (1 - codes).T
        expected = torch.linalg.slogdet(kernel + torch.eye(6, dtype=torch.float64))[1]
        assert naswot_score(net, x) == pytest.approx(float(expected))

    def test_needs_activation_modules(self) -> None:
        with pytest.raises(EstimatorError, match="activation modules"):
            NaswotEstimator().estimate(SPACE, "no_activation")

    def test_arguments_are_validated(self) -> None:
        with pytest.raises(ValueError, match="batch_size=1"):
            NaswotEstimator(batch_size=1)
        with pytest.raises(ValueError, match="input_shape="):
            NaswotEstimator(input_shape=(8, 8))


class TestSynflow:
    def test_linear_chain_has_the_closed_form(self) -> None:
        # For a bias-free linear chain, each layer's sum of theta * dR/dtheta is R itself.
        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(4, 3, bias=False), nn.Linear(3, 2, bias=False))
        w1, w2 = net[0].weight.detach().abs().double(), net[1].weight.detach().abs().double()
        r = float((w2 @ w1 @ torch.ones(4, dtype=torch.float64)).sum())
        assert synflow_score(net, (1, 4)) == pytest.approx(2 * r, rel=1e-12)

    def test_disconnected_net_scores_zero(self) -> None:
        estimator = SynflowEstimator()
        assert estimator.estimate(SPACE, "disconnected") == 0.0
        assert estimator.estimate(SPACE, "cnn") > 0.0

    def test_deterministic(self) -> None:
        assert SynflowEstimator(seed=3).estimate(SPACE, "cnn") == SynflowEstimator(seed=3).estimate(
            SPACE, "cnn"
        )
        assert SynflowEstimator(seed=3).estimate(SPACE, "cnn") != SynflowEstimator(seed=4).estimate(
            SPACE, "cnn"
        )


class TestShortTraining:
    DATA = synthetic_dataset(seed=0)

    def test_beats_chance_by_far_and_is_deterministic(self) -> None:
        estimator = ShortTrainingEstimator(self.DATA, epochs=3, batch_size=32, seed=0)
        accuracy = estimator.estimate(SPACE, "cnn")
        assert accuracy > 0.6  # chance is 0.1
        assert estimator.estimate(SPACE, "cnn") == accuracy

    def test_adapts_the_head_to_the_classes(self) -> None:
        estimator = ShortTrainingEstimator(self.DATA, epochs=3, batch_size=32)
        # 1000 and 4 logits: the final Linear is replaced by a 10-way one
        assert estimator.estimate(SPACE, "wide_head") > 0.6
        assert estimator.estimate(SPACE, "narrow_head") > 0.6
        # no Linear but 12 outputs: the first 10 are the logits
        assert estimator.estimate(SPACE, "no_linear") > 0.3
        with pytest.raises(EstimatorError, match="3 logits"):
            estimator.estimate(SPACE, "too_few_logits")

    def test_adapts_images_to_the_network_input(self) -> None:
        rgb = ModuleSpace({"cnn3": lambda: small_cnn(channels=3)}, shape=(1, 3, 16, 16))
        estimator = ShortTrainingEstimator(self.DATA, epochs=3, batch_size=32)
        assert estimator.estimate(rgb, "cnn3") > 0.6

    def test_arguments_are_validated(self) -> None:
        with pytest.raises(ValueError, match="epochs=0"):
            ShortTrainingEstimator(self.DATA, epochs=0)
        with pytest.raises(ValueError, match="optimizer='rmsprop'"):
            ShortTrainingEstimator(self.DATA, optimizer="rmsprop")
        with pytest.raises(ValueError, match="lr=-1"):
            ShortTrainingEstimator(self.DATA, lr=-1)

    def test_digits(self) -> None:
        digits = load_digits()
        estimator = ShortTrainingEstimator(digits, epochs=2, batch_size=64)
        assert estimator.estimate(SPACE, "cnn") > 0.6


class TestNB201:
    """The estimators on the real NAS-Bench-201 space (a narrow variant, for speed)."""

    SPACE = NB201Space(cells_per_stage=1, channels=8)
    NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    CONVS = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"

    def test_proxies_rank_a_conv_cell_above_an_empty_one(self) -> None:
        empty, convs = self.SPACE.decode(self.NONE), self.SPACE.decode(self.CONVS)
        assert SynflowEstimator().estimate(self.SPACE, empty) == 0.0
        assert SynflowEstimator().estimate(self.SPACE, convs) > 0.0
        naswot = NaswotEstimator(batch_size=16)
        assert naswot.estimate(self.SPACE, convs) > naswot.estimate(self.SPACE, empty) + 50.0

    def test_short_training_on_digits_resized_to_the_input(self) -> None:
        # scikit-learn's 1x8x8 grey digits -> the 3x32x32 network input
        estimator = ShortTrainingEstimator(load_digits(), epochs=3, batch_size=64,
                                           max_train_samples=1000, max_val_samples=300)
        assert estimator.estimate(self.SPACE, self.SPACE.decode(self.CONVS)) > 0.5  # chance: 0.1


class TestPlugin:
    def test_calls_the_user_function(self) -> None:
        estimator = PluginEstimator(f"{__name__}:plugin_score")
        assert estimator.name == f"plugin:{__name__}:plugin_score"
        assert estimator.estimate(SPACE, "cnn") == SPACE.count_params("cnn")

    @pytest.mark.parametrize(
        "spec,message",
        [
            ("no_colon", "expected 'module:function'"),
            ("a:b:c", "expected 'module:function'"),
            ("fleetnas_no_such_module:fn", "no module named 'fleetnas_no_such_module'"),
            (f"{__name__}:missing", "has no attribute 'missing'"),
            (f"{__name__}:NOT_CALLABLE", "not callable"),
        ],
    )
    def test_load_errors_say_what_is_wrong(self, spec: str, message: str) -> None:
        with pytest.raises(PluginError, match=message):
            PluginEstimator(spec)

    def test_non_numeric_result(self) -> None:
        with pytest.raises(PluginError, match="not a number"):
            PluginEstimator(f"{__name__}:plugin_text").estimate(SPACE, "cnn")


def test_estimator_as_a_search_objective() -> None:
    space = ModuleSpace(
        {k: v for k, v in SPACE.factories.items() if k in ("cnn", "dead", "wide_head")}
    )
    accuracy = NaswotEstimator(batch_size=8).as_objective(space)
    engine = SearchEngine(space, NSGA2Strategy(population_size=2), [accuracy, "params"], seed=0)
    trials = engine.run(lambda c: {"params": float(space.count_params(c.arch))}, n_trials=3)
    assert {t.candidate.encoding for t in trials} == {"cnn", "dead", "wide_head"}
    scores = {t.candidate.encoding: t.values["accuracy"] for t in trials}
    assert scores["cnn"] > scores["dead"]
    assert json.dumps(engine.state_dict())


def test_mobilenetv3_space() -> None:
    """Proxies on the real MobileNetV3 space, and its 1000-way classifier refitted to 10 classes."""
    space = MobileNetV3Space(resolutions=(96,), width_mult=0.5)
    arch = space.sample(random.Random(0))
    assert math.isfinite(NaswotEstimator(batch_size=8).estimate(space, arch))
    assert SynflowEstimator().estimate(space, arch) > 0.0
    net = space.build(arch)
    net, width = fit_head(net, 10, torch.zeros(2, 3, 96, 96))
    assert width == 10
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert linears[-1].out_features == 10
