"""NB201 supernet: weight sharing, materialisation, BN recalibration, training on digits."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from fleetnas.controller.accuracy import load_digits
from fleetnas.controller.accuracy.supernet import (
    EvalConfig,
    NB201Supernet,
    PreparedData,
    SupernetError,
    SupernetProgress,
    TrainConfig,
    build_supernet,
    make_rule,
    materialised_subnet,
    recalibrate_bn,
    resolved,
    subnet_accuracy,
    train,
)
from fleetnas.controller.accuracy.supernet._eval import batch_norms
from fleetnas.controller.spaces import MobileNetV3Space, NB201Arch, NB201Space, UnknownArch

SPACE = NB201Space(channels=4, cells_per_stage=1)
EVAL = EvalConfig(bn_batches=2, batch_size=64, max_val_samples=200)


@pytest.fixture(autouse=True, scope="module")
def single_thread() -> Iterator[None]:
    """One torch thread for these tiny networks: faster than two, far faster on a loaded host.

    The resume test needs it too: bitwise-equal training across processes
    needs the same thread count.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits_data() -> PreparedData:
    return PreparedData(load_digits(), max_train_samples=600, seed=0)


def jitter(net: torch.nn.Module, seed: int) -> None:
    """Non-trivial BN affine weights (and mbv3 kernel transforms): a wrong copy or slice shows."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for bn in batch_norms(net):
            bn.weight.copy_(1 + 0.5 * torch.rand(bn.weight.shape, generator=generator))
            bn.bias.copy_(0.2 * torch.randn(bn.bias.shape, generator=generator))
        for name, p in net.named_parameters():
            if name.split(".")[-2] == "transforms":
                p.add_(0.1 * torch.randn(p.shape, generator=generator))


def _arch(*ops: str) -> NB201Arch:
    return NB201Arch(tuple(ops))


def test_supernet_has_the_space_skeleton() -> None:
    space = NB201Space(channels=8, cells_per_stage=2)
    net = build_supernet(space, 10, resolved(TrainConfig(), space))
    assert isinstance(net, NB201Supernet)
    arch = space.sample(random.Random(3))
    built = space.build(arch)
    for name in ("stem", "head"):
        mine = {k: v.shape for k, v in getattr(net, name).state_dict().items()}
        theirs = {k: v.shape for k, v in getattr(built, name).state_dict().items()}
        assert mine == theirs
    # every cell holds one module per op on each of the 6 edges
    cells = [layer for layer in net.layers if hasattr(layer, "candidates")]
    assert len(cells) == 3 * space.cells_per_stage
    assert all(len(cell.candidates) == 6 and len(cell.candidates[0]) == 4 for cell in cells)
    materialised = net.materialise(arch)
    assert sum(p.numel() for p in materialised.parameters()) == space.count_params(arch)


def test_two_subnets_with_the_same_edge_op_share_its_parameters(digits_data: PreparedData) -> None:
    net = build_supernet(SPACE, 10, resolved(TrainConfig(), SPACE))
    a = _arch("nor_conv_3x3", "skip_connect", "nor_conv_3x3", "none", "avg_pool_3x3", "nor_conv_1x1")
    b = _arch("nor_conv_1x1", "nor_conv_3x3", "nor_conv_3x3", "skip_connect", "none", "nor_conv_3x3")
    cell = net.layers[0]
    shared = cell.candidates[2]["nor_conv_3x3"][1].weight  # edge 2 (1 -> 2): 3x3 in both
    only_a = cell.candidates[0]["nor_conv_3x3"][1].weight  # edge 0: 3x3 in a, 1x1 in b
    x = digits_data.train_inputs(torch.arange(8), net.input_chw(a))

    grads = {}
    for name, arch in (("a", a), ("b", b)):
        net.zero_grad(set_to_none=True)
        net(x, arch).sum().backward()
        grads[name] = (shared.grad is not None, only_a.grad is not None)
    assert grads == {"a": (True, True), "b": (True, False)}

    # one tensor: a change made through it is what both materialised subnets inherit
    with torch.no_grad():
        shared.add_(1.0)
    for arch in (a, b):
        copied = net.materialise(arch).layers[0].edges["2"][1].weight
        assert torch.equal(copied, shared)
    # another cell keeps its own weights for the same edge and op
    assert net.layers[2].candidates[2]["nor_conv_3x3"][1].weight is not shared


@pytest.mark.parametrize(
    "ops",
    [
        ("nor_conv_3x3",) * 6,
        ("skip_connect",) * 6,
        ("nor_conv_1x1", "avg_pool_3x3", "none", "nor_conv_3x3", "skip_connect", "nor_conv_1x1"),
        # edges into node 2 are dead (node 2 never reaches the output), node 1 has no input
        ("none", "nor_conv_3x3", "avg_pool_3x3", "nor_conv_1x1", "nor_conv_3x3", "none"),
        ("none",) * 6,
    ],
)
def test_materialised_subnet_gives_the_supernet_logits(
    ops: tuple[str, ...], digits_data: PreparedData
) -> None:
    net = build_supernet(SPACE, 10, resolved(TrainConfig(seed=1), SPACE))
    jitter(net, seed=2)
    arch = _arch(*ops)
    module = materialised_subnet(net, arch, digits_data, EVAL)
    assert type(module) is type(SPACE.build(arch))
    batches = digits_data.calibration_batches(
        net.input_chw(arch), batches=EVAL.bn_batches, batch_size=EVAL.batch_size, seed=EVAL.seed
    )
    recalibrate_bn(net, batches, lambda x: net(x, arch))
    x = digits_data.train_inputs(torch.arange(100, 140), net.input_chw(arch))
    with torch.no_grad():
        expected = net(x, arch)
        got = module(x)
    assert expected.shape == (40, 10)
    assert torch.allclose(got, expected, atol=1e-5, rtol=0)


def test_bn_recalibration_sets_the_average_batch_statistics(digits_data: PreparedData) -> None:
    net = build_supernet(SPACE, 10, resolved(TrainConfig(), SPACE))
    arch = _arch("nor_conv_3x3", "skip_connect", "nor_conv_1x1", "none", "avg_pool_3x3", "skip_connect")
    batches = digits_data.calibration_batches(net.input_chw(arch), batches=3, batch_size=50, seed=4)
    stem_bn = net.stem[1]
    before = stem_bn.running_mean.clone()
    recalibrate_bn(net, batches, lambda x: net(x, arch))
    with torch.no_grad():
        conv_out = [net.stem[0](b) for b in batches]
    means = torch.stack([c.mean(dim=(0, 2, 3)) for c in conv_out]).mean(dim=0)
    variances = torch.stack([c.var(dim=(0, 2, 3), unbiased=True) for c in conv_out]).mean(dim=0)
    assert not torch.allclose(before, stem_bn.running_mean)
    assert torch.allclose(stem_bn.running_mean, means, atol=1e-6)
    assert torch.allclose(stem_bn.running_var, variances, atol=1e-5)
    assert stem_bn.momentum == 0.1 and not net.training


def test_scoring_a_subnet_leaves_the_supernet_unchanged(digits_data: PreparedData) -> None:
    net = build_supernet(SPACE, 10, resolved(TrainConfig(), SPACE))
    state = {k: v.clone() for k, v in net.state_dict().items()}
    arch = SPACE.sample(random.Random(0))
    first = subnet_accuracy(net, arch, digits_data, EVAL)
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in state.items())
    assert subnet_accuracy(net, arch, digits_data, EVAL) == first
    assert 0.0 <= first <= 1.0


def test_a_trained_supernet_beats_chance_on_digits(tmp_path: Path) -> None:
    data = PreparedData(load_digits(), seed=0)  # all 1437 training images: 45 steps an epoch
    config = resolved(TrainConfig(epochs=4, batch_size=32, lr=0.1, seed=0), SPACE)
    net = build_supernet(SPACE, 10, config)
    archs = [net.largest(), net.smallest(), *(SPACE.sample(random.Random(i)) for i in range(4))]
    untrained = [subnet_accuracy(net, a, data, EVAL) for a in archs]
    seen: list[SupernetProgress] = []
    outcome = train(net, data, config, tmp_path / "ckpt.pt", progress=seen.append)
    steps = len(seen) // 4
    assert outcome.epochs_done == 4 and outcome.resumed_from == 0 and steps == 45
    assert [(p.epoch, p.step) for p in seen[:2]] == [(1, 1), (1, 2)]
    assert seen[-1].epoch == 4 and seen[-1].step == steps == seen[-1].steps
    assert seen[-1].seconds >= seen[0].seconds > 0
    assert sum(p.loss for p in seen[-steps:]) < sum(p.loss for p in seen[:steps])
    # chance is 0.1 (+-0.02 on 200 images). Uniform single-path training is slow to lift
    # every subnet (each edge op trains in a fifth of the steps): after 180 steps of this
    # 4-channel net the subnets score 0.2-0.5
    trained = [subnet_accuracy(net, a, data, EVAL) for a in archs]
    mean = sum(trained) / len(trained)
    assert mean > 0.2 and mean > sum(untrained) / len(untrained) + 0.08, (trained, untrained)
    assert max(trained) > 0.3, trained


def test_bad_configs_and_archs_are_refused() -> None:
    with pytest.raises(ValueError, match="epochs=0"):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError, match="lr=-1"):
        TrainConfig(lr=-1)
    with pytest.raises(ValueError, match="unknown settings \\['epoch'\\]"):
        TrainConfig.from_dict({"epoch": 3})
    with pytest.raises(ValueError, match="bn_batches=0"):
        EvalConfig(bn_batches=0)
    net = build_supernet(SPACE, 10, resolved(TrainConfig(), SPACE))
    with pytest.raises(SupernetError, match="expected one of \\['progressive', 'sandwich', 'uniform'\\]"):
        make_rule(TrainConfig(sampling="spos"), net)
    with pytest.raises(SupernetError, match="trains mbv3 only, not nb201"):
        make_rule(TrainConfig(sampling="progressive"), net)
    with pytest.raises(SupernetError, match="distill=True needs"):
        make_rule(TrainConfig(sampling="uniform", distill=True), net)
    with pytest.raises(SupernetError, match="not to nb201"):
        build_supernet(SPACE, 10, TrainConfig(kernel_transform=True))
    mbv3_arch = MobileNetV3Space(resolutions=(32,)).sample(random.Random(0))
    with pytest.raises(UnknownArch):
        net(torch.zeros(2, 3, 32, 32), mbv3_arch)
    with pytest.raises(UnknownArch):
        net.materialise(mbv3_arch)
