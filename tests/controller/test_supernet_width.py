"""mbv3 supernet, elastic width: shapes and logits of narrower subnets, sampling, channel
sorting, progressive shrinking's width phase, store keys of width-elastic spaces."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import shutil
from pathlib import Path

import pytest
import torch

from fleetnas.controller.accuracy import load_digits
from fleetnas.controller.accuracy.supernet import (
    EvalConfig,
    MBv3Supernet,
    PreparedData,
    ProgressiveRule,
    SandwichRule,
    SupernetError,
    SupernetStore,
    TrainConfig,
    TrainOutcome,
    build_supernet,
    dataset_hash,
    materialised_subnet,
    recalibrate_bn,
    resolved,
    supernet_key,
    train,
)
from fleetnas.controller.accuracy.supernet._sampling import PHASES, phases
from fleetnas.controller.spaces import MBv3Arch, MobileNetV3Space
from tests.controller.test_supernet import (
    jitter,
    single_thread,  # noqa: F401 - autouse fixture
)

# width 1.25 is above the skeleton's, so the supernet holds more than width 1.0; 0.85 gives
# stage 4 (stride 1) 48 channels, as 1.25 gives stage 3, so its first block can be residual
SPACE = MobileNetV3Space(
    resolutions=(32, 40), width_mult=0.5, num_classes=10, width_choices=(0.5, 0.85, 1.25)
)
EVAL = EvalConfig(bn_batches=2, batch_size=64, max_val_samples=200)
BLOCKS = (((7, 3), (3, 6)), ((5, 4),) * 3, ((3, 6),) * 4, ((7, 4), (5, 3)), ((3, 3),) * 3)


@pytest.fixture(scope="module")
def digits_data() -> PreparedData:
    return PreparedData(load_digits(), max_train_samples=240, seed=0)


def _net(seed: int = 2, **options: object) -> MBv3Supernet:
    config = TrainConfig(seed=seed, **options)  # type: ignore[arg-type]
    net = build_supernet(SPACE, 10, resolved(config, SPACE))
    assert isinstance(net, MBv3Supernet)
    return net


def _narrow_archs() -> list[MBv3Arch]:
    return [
        MBv3Arch(32, BLOCKS, (0.5, 0.85, 0.5, 0.85, 0.5)),
        MBv3Arch(40, BLOCKS, (1.25, 0.5, 1.25, 0.85, 0.85)),  # stage 4's first block residual
        SPACE.sample(random.Random(4)),
    ]


def test_supernet_holds_the_largest_width_and_narrow_subnets_build_like_the_space() -> None:
    net = _net()
    for arch in _narrow_archs():
        built = SPACE.build(arch)
        module = net.materialise(arch)
        shapes = {k: v.shape for k, v in module.state_dict().items()}
        assert shapes == {k: v.shape for k, v in built.state_dict().items()}, SPACE.encode(arch)
        assert sum(p.numel() for p in module.parameters()) == SPACE.count_params(arch)
        # the subnet's stage widths are the space's, e.g. stage 1's projection
        project = module.block_modules()[2].project[0].weight
        assert project.shape[0] == SPACE.stage_channels[0][arch.widths[0]]
    assert net.stage_capacity == tuple(max(c.values()) for c in SPACE.stage_channels)
    assert net.stage_capacity > SPACE.stage_widths  # wider than width 1.0


def test_narrow_subnet_path_gives_the_materialised_nets_logits(digits_data: PreparedData) -> None:
    net = _net(kernel_transform=True)
    jitter(net, seed=3)
    net.sort_channels()  # a non-trivial order: a slice of the wrong channels shows
    for arch in [net.smallest(), *_narrow_archs()]:
        module = materialised_subnet(net, arch, digits_data, EVAL)
        shape = net.input_chw(arch)
        batches = digits_data.calibration_batches(
            shape, batches=EVAL.bn_batches, batch_size=EVAL.batch_size, seed=EVAL.seed
        )
        recalibrate_bn(net, batches, lambda x, a=arch: net(x, a))
        x = digits_data.train_inputs(torch.arange(30), shape)
        with torch.no_grad():
            assert torch.allclose(module(x), net(x, arch), atol=1e-5, rtol=0), SPACE.encode(arch)
    residual = _narrow_archs()[1]
    assert net.channels(residual)[2] == net.channels(residual)[3] == 48
    assert SPACE.build(residual).block_modules()[2 + 2 + 3 + 4].residual


def test_sampling_draws_every_width_and_the_sandwich_ends_at_max_and_min() -> None:
    net = _net()
    rng = random.Random(0)
    largest, smallest, *_ = SandwichRule(n_random=2)._subnets(net, rng, 0.0)
    assert largest == net.largest() and smallest == net.smallest()
    assert largest.widths == (1.25,) * 5 and smallest.widths == (0.5,) * 5
    assert net.channels(largest) == net.stage_capacity
    width_phase = PHASES[-1]
    assert width_phase is not None and width_phase.elastic_width
    only_k3 = dataclasses.replace(width_phase, kernels=(3,))
    for sample in (net.sample, lambda r: net.restricted_sample(r, only_k3)):
        archs = [sample(rng) for _ in range(60)]
        for s in range(5):
            assert {a.widths[s] for a in archs} == set(SPACE.width_choices)


def test_progressive_shrinking_ends_with_a_width_phase_that_starts_sorted() -> None:
    net = _net(sampling="progressive")
    rule = ProgressiveRule(n_random=4)
    rng = random.Random(1)
    assert len(phases(net)) == 5
    expand_phase = rule._subnets(net, rng, 0.7)  # phase 4 of 5: expand, still full width
    assert {e for a in expand_phase for s in a.stages for _, e in s} > {6}
    assert {w for a in expand_phase for w in a.widths} == {1.25}
    width_phase = rule._subnets(net, rng, 0.9)
    assert width_phase[1] == net.smallest()
    assert {w for a in width_phase for w in a.widths} == set(SPACE.width_choices)
    # one width choice keeps the four phases (the supernets trained before stay the same)
    plain = build_supernet(
        MobileNetV3Space(resolutions=(32,), width_mult=0.25, num_classes=10), 10,
        resolved(TrainConfig(), SPACE),
    )  # fmt: skip
    assert len(phases(plain)) == 4

    # the sort runs once, before the width phase's first epoch (epochs 8, 9 of 10)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    weight = net.slots(1)[0].project_conv.weight
    sorted_at = []
    for epoch in range(10):
        before = weight.detach().clone()
        rule.begin_epoch(net, optimizer, epoch=epoch, epochs=10)
        if not torch.equal(before, weight):
            sorted_at.append(epoch)
        with torch.no_grad():  # as training would, upset the order a sort would restore
            weight.copy_(weight.flip(0))
    assert sorted_at == [8]


def test_sorting_channels_keeps_the_largest_and_puts_important_channels_first(
    digits_data: PreparedData,
) -> None:
    net = _net()
    jitter(net, seed=5)
    net.eval()
    arch = net.largest()
    x = digits_data.train_inputs(torch.arange(8), net.input_chw(arch))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    net(x, arch).sum().backward()
    optimizer.step()  # momentum buffers now equal the gradients
    with torch.no_grad():
        before = net(x, arch)
    project = net.slots(2)[1].project_conv.weight
    momentum = optimizer.state[project]["momentum_buffer"].clone()
    rows = {tuple(r.flatten().tolist()): m for r, m in zip(project.detach(), momentum, strict=True)}
    unsorted = sum(s.project_conv.weight.abs().sum(dim=(1, 2, 3)) for s in net.slots(2))
    assert not torch.all(unsorted[:-1] >= unsorted[1:])
    net.sort_channels(optimizer)
    with torch.no_grad():
        assert torch.allclose(net(x, arch), before, atol=1e-5, rtol=0)
    importance = sum(s.project_conv.weight.abs().sum(dim=(1, 2, 3)) for s in net.slots(2))
    assert torch.all(importance[:-1] >= importance[1:])
    moved = optimizer.state[project]["momentum_buffer"]
    for row, m in zip(project.detach(), moved, strict=True):
        assert torch.equal(rows[tuple(row.flatten().tolist())], m)


def test_progressive_training_resumed_in_the_width_phase_ends_with_the_same_weights(
    tmp_path: Path,
) -> None:
    """A run stopped before the width phase (epoch 4 of 5) sorts when it resumes, as an
    uninterrupted run does when the phase begins."""
    space = MobileNetV3Space(resolutions=(32,), width_mult=0.25, num_classes=10,
                             width_choices=(0.5, 1.0))  # fmt: skip
    data = PreparedData(load_digits(), max_train_samples=16, seed=0)  # one step per epoch
    config = resolved(
        TrainConfig(epochs=5, batch_size=16, sampling="progressive", sandwich_random=0), space
    )
    whole_path, stopped_path = tmp_path / "whole.pt", tmp_path / "stopped.pt"

    def keep_epoch_4(outcome: TrainOutcome) -> None:  # the checkpoint a kill in epoch 5 leaves
        if outcome.epochs_done == 4:
            shutil.copyfile(whole_path, stopped_path)

    whole = build_supernet(space, 10, config)
    train(whole, data, config, whole_path, on_epoch=keep_epoch_4)
    resumed = build_supernet(space, 10, config)
    assert train(resumed, data, config, stopped_path).resumed_from == 4
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def _old_key(space: MobileNetV3Space, data_hash: str, config: TrainConfig) -> str:
    """supernet_key as it was before elastic width (mbv3 supernet version 1)."""
    payload = {
        "space": space.identity(), "space_version": space.version, "supernet": "mbv3",
        "supernet_version": 1, "dataset": data_hash, "config": resolved(config, space).to_dict(),
    }  # fmt: skip
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return f"mbv3-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def test_supernets_stored_before_elastic_width_are_found_only_for_one_width(
    tmp_path: Path,
) -> None:
    data = load_digits()
    h = dataset_hash(data)
    config = TrainConfig(epochs=1)
    plain = MobileNetV3Space(resolutions=(32,), width_mult=0.25, num_classes=10)
    assert supernet_key(plain, h, config) == _old_key(plain, h, config)
    assert supernet_key(SPACE, h, config) != _old_key(SPACE, h, config)
    # a width-elastic supernet whose manifest says version 1 is refused, naming the fix
    space = MobileNetV3Space(resolutions=(32,), width_mult=0.25, num_classes=10,
                             width_choices=(0.5, 1.0))  # fmt: skip
    store = SupernetStore(tmp_path)
    tiny = TrainConfig(epochs=1, batch_size=16, max_train_samples=32, sampling="uniform")
    quick = EvalConfig(bn_batches=1, max_val_samples=16)
    trained = store.get_or_train(space, data, tiny, eval_config=quick)
    manifest = trained.path / "manifest.json"
    text = json.loads(manifest.read_text())
    assert text["supernet_version"] == 2
    manifest.write_text(json.dumps({**text, "supernet_version": 1}))
    with pytest.raises(SupernetError, match="version 1.*train it again"):
        store.load(text["key"])
