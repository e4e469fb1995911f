"""mbv3 supernet: elastic kernel/expand/depth/resolution, materialisation, sandwich training."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from fleetnas.controller.accuracy import load_digits
from fleetnas.controller.accuracy.supernet import (
    ElasticBatchNorm2d,
    EvalConfig,
    MBv3Supernet,
    PreparedData,
    ProgressiveRule,
    SandwichRule,
    TrainConfig,
    build_supernet,
    materialised_subnet,
    recalibrate_bn,
    resolved,
    subnet_accuracy,
    train,
)
from fleetnas.controller.accuracy.supernet._sampling import StepBatch
from fleetnas.controller.spaces import MBv3Arch, MobileNetV3Space
from fleetnas.controller.spaces._mbv3 import mid_width
from tests.controller.test_supernet import (
    jitter,
    single_thread,  # noqa: F401 - autouse fixture
)

# widths 8-40, final 240/320: a few ms per forward pass at 32-40 pixels
SPACE = MobileNetV3Space(resolutions=(32, 40), width_mult=0.25, num_classes=10)
EVAL = EvalConfig(bn_batches=2, batch_size=64, max_val_samples=200)


@pytest.fixture(scope="module")
def digits_data() -> PreparedData:
    return PreparedData(load_digits(), max_train_samples=480, seed=0)


def _archs() -> list[MBv3Arch]:
    rng = random.Random(5)
    sampled = [SPACE.sample(rng)]
    mixed = MBv3Arch(
        40, (((7, 3), (3, 6)), ((5, 4),) * 3, ((3, 6),) * 4, ((7, 4), (5, 3)), ((3, 3),) * 3)
    )
    return sampled + [mixed]


@pytest.mark.parametrize("kernel_transform", [False, True])
def test_materialised_subnets_give_the_supernet_logits(
    kernel_transform: bool, digits_data: PreparedData
) -> None:
    config = resolved(TrainConfig(kernel_transform=kernel_transform, seed=2), SPACE)
    net = build_supernet(SPACE, 10, config)
    assert isinstance(net, MBv3Supernet)
    jitter(net, seed=3)
    for arch in [net.largest(), net.smallest(), *_archs()]:
        module = materialised_subnet(net, arch, digits_data, EVAL)
        assert sum(p.numel() for p in module.parameters()) == SPACE.count_params(arch)
        shape = net.input_chw(arch)
        assert shape == (3, arch.resolution, arch.resolution)
        batches = digits_data.calibration_batches(
            shape, batches=EVAL.bn_batches, batch_size=EVAL.batch_size, seed=EVAL.seed
        )
        recalibrate_bn(net, batches, lambda x, a=arch: net(x, a))
        x = digits_data.train_inputs(torch.arange(30), shape)
        with torch.no_grad():
            assert torch.allclose(module(x), net(x, arch), atol=1e-5, rtol=0), SPACE.encode(arch)


def test_elastic_batch_norm_uses_and_updates_only_the_first_channels() -> None:
    bn = ElasticBatchNorm2d(16, momentum=None)
    x = torch.randn(6, 8, 5, 5) * 3 + 2
    bn.train()
    out = bn(x)
    assert torch.allclose(bn.running_mean[:8], x.mean(dim=(0, 2, 3)), atol=1e-6)
    assert torch.equal(bn.running_mean[8:], torch.zeros(8))
    assert torch.equal(bn.running_var[8:], torch.ones(8))
    reference = torch.nn.functional.batch_norm(x, None, None, training=True)
    assert torch.allclose(out, reference, atol=1e-5)
    bn.eval()
    assert torch.allclose(bn(x[:, :4]), (x[:, :4] - bn.running_mean[:4, None, None])
                          / torch.sqrt(bn.running_var[:4, None, None] + bn.eps), atol=1e-5)  # fmt: skip


def test_elastic_choices_take_the_first_channels_and_the_centre_kernel() -> None:
    net = build_supernet(SPACE, 10, resolved(TrainConfig(), SPACE))
    arch = MBv3Arch(32, (((3, 3), (5, 4)),) + (((7, 6), (7, 6)),) * 4)
    module = net.materialise(arch)
    slot = net.stages[0][0]
    block = module.block_modules()[2]  # stem, first block, then stage 0 slot 0
    mid = mid_width(slot.c_in, 3)
    assert block.expand[0].weight.shape[0] == mid < slot.expand_conv.weight.shape[0]
    assert torch.equal(block.expand[0].weight, slot.expand_conv.weight[:mid])
    assert torch.equal(block.depthwise[0].weight, slot.depthwise_conv.weight[:mid, :, 2:5, 2:5])
    assert torch.equal(block.project[0].weight, slot.project_conv.weight[:, :mid])
    second = module.block_modules()[3]
    assert torch.equal(
        second.depthwise[0].weight,
        net.stages[0][1].depthwise_conv.weight[: mid_width(slot.c_out, 4), :, 1:6, 1:6],
    )
    # depth 2: stage 0's third slot is not part of the subnet; stage 1 follows at once
    assert len(module.block_modules()) == 2 + 2 * 5 + 1


def test_sandwich_trains_largest_smallest_and_random_subnets(digits_data: PreparedData) -> None:
    net = build_supernet(SPACE, 10, resolved(TrainConfig(), SPACE))
    net.train()
    batch = StepBatch(digits_data, torch.arange(16))
    # only depth-4 subnets reach a stage's 4th slot; stage 0 runs at 10-16 pixels, so the
    # corners of its 7x7 kernel touch the image (at stage 2's 3x3 they see padding only)
    last_slot = net.stages[0][3].depthwise_conv.weight
    for distill in (False, True):
        net.zero_grad(set_to_none=True)
        loss = SandwichRule(n_random=0, distill=distill).step(
            net, batch, random.Random(0), progress=0.0
        )
        assert loss > 0 and last_slot.grad is not None
        # the 7x7 kernel's corners get gradient only from kernel-7 subnets (the largest)
        assert last_slot.grad[:, :, 0, 0].abs().sum() > 0
    # two resolutions were fed, each fitted once
    assert set(batch._inputs) == {(3, 32, 32), (3, 40, 40)}


def test_progressive_shrinking_widens_the_choices_by_phase() -> None:
    net = build_supernet(SPACE, 10, resolved(TrainConfig(sampling="progressive"), SPACE))
    rule = ProgressiveRule(n_random=3)
    rng = random.Random(1)
    assert rule._subnets(net, rng, 0.1) == [net.largest()]
    kernel_phase = rule._subnets(net, rng, 0.3)
    assert {len(s) for a in kernel_phase for s in a.stages} == {4}
    assert {e for a in kernel_phase for s in a.stages for _, e in s} == {6}
    assert {k for a in kernel_phase for s in a.stages for k, _ in s} > {3}
    depth_phase = rule._subnets(net, rng, 0.6)
    assert min(len(s) for a in depth_phase for s in a.stages) == 2
    assert {e for a in depth_phase for s in a.stages for _, e in s} == {6}
    assert rule._subnets(net, rng, 0.9)[1] == net.smallest()


def test_sandwich_distilled_training_beats_chance(tmp_path: Path, digits_data: PreparedData) -> None:
    space = MobileNetV3Space(resolutions=(32,), width_mult=0.25, num_classes=10)
    config = resolved(
        TrainConfig(epochs=2, batch_size=32, lr=0.1, sandwich_random=0, distill=True), space
    )
    assert config.sampling == "sandwich"
    net = build_supernet(space, 10, config)
    untrained = subnet_accuracy(net, net.largest(), digits_data, EVAL)
    outcome = train(net, digits_data, config, tmp_path / "ckpt.pt")
    assert outcome.epochs_done == 2
    # chance is 0.1 (+-0.02 on 200 images); 30 steps lift both ends of the sandwich
    largest = subnet_accuracy(net, net.largest(), digits_data, EVAL)
    smallest = subnet_accuracy(net, net.smallest(), digits_data, EVAL)
    assert largest > 0.35 and smallest > 0.25 and largest > untrained + 0.15, (
        largest, smallest, untrained,
    )  # fmt: skip
