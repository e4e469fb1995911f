"""The OFA/MobileNetV3-style space: encoding, skeleton, LUT blocks per resolution, chained blocks."""

from __future__ import annotations

import random

import pytest
import torch

from fleetnas.controller.spaces import Block, MBv3Arch, MobileNetV3Space, UnknownArch
from fleetnas.controller.spaces._mbv3 import make_divisible

SPACE = MobileNetV3Space()
SMALL = MobileNetV3Space(resolutions=(96, 128), width_mult=0.5, num_classes=10)

MAX_224 = "r224|" + "|".join(["k7e6,k7e6,k7e6,k7e6"] * 5)
MIN_160 = "r160|" + "|".join(["k3e3,k3e3"] * 5)


def test_encoding_is_readable_and_stable() -> None:
    arch = MBv3Arch(
        192, (((3, 4), (5, 6)), ((7, 3),) * 3, ((3, 3),) * 4, ((5, 4),) * 2, ((7, 6),) * 2)
    )
    text = SPACE.encode(arch)
    assert text == "r192|k3e4,k5e6|k7e3,k7e3,k7e3|k3e3,k3e3,k3e3,k3e3|k5e4,k5e4|k7e6,k7e6"
    assert SPACE.decode(text) == arch


def test_resolutions_belong_to_the_instance() -> None:
    assert SPACE.decode(MAX_224).resolution == 224
    with pytest.raises(UnknownArch, match="resolution 224"):
        SMALL.decode(MAX_224)
    small = SMALL.decode(MAX_224.replace("r224", "r96"))
    with pytest.raises(UnknownArch):
        SPACE.blocks(small)


def test_skeleton_matches_ofa_mobilenetv3() -> None:
    arch = SPACE.decode(MAX_224)
    blocks = SPACE.blocks(arch)
    assert blocks[0] == Block.of("mbv3.stem", c_out=16, hw=224)
    assert blocks[1] == Block.of(
        "mbv3.mbconv", kernel=3, expand=1, c_in=16, c_out=16, stride=1, hw=112, se=False, act="relu"
    )
    firsts = [blocks[2 + 4 * s] for s in range(5)]
    assert [(b.param("c_out"), b.param("stride"), b.param("hw")) for b in firsts] == [
        (24, 2, 112),
        (40, 2, 56),
        (80, 2, 28),
        (112, 1, 14),
        (160, 2, 14),
    ]
    assert [b.param("se") for b in firsts] == [False, True, False, True, True]
    assert [b.param("act") for b in firsts] == ["relu", "relu", "hswish", "hswish", "hswish"]
    assert blocks[-1] == Block.of("mbv3.head", c_in=160, c_mid=960, c_out=1280, classes=1000, hw=7)
    # OFA's largest subnet: 7.7M params, ~0.57 GMACs at 224
    assert SPACE.count_params(arch) == 7_664_760
    assert 550e6 < SPACE.count_flops(arch) < 600e6
    assert SPACE.count_flops(SPACE.decode(MIN_160)) < SPACE.count_flops(SPACE.decode(MAX_224)) / 5


def test_odd_resolutions_round_up_like_a_padded_conv() -> None:
    space = MobileNetV3Space(resolutions=(176,))
    hws = [b.param("hw") for b in space.blocks(space.decode(MIN_160.replace("r160", "r176")))]
    assert hws == [176, 88, 88, 44, 44, 22, 22, 11, 11, 11, 11, 6, 6]


def test_all_blocks_per_resolution() -> None:
    for r in SPACE.resolutions:
        blocks = SPACE.blocks_at_resolution(r)
        # stem + first block + 5 stages x (9 first blocks + 9 repeated blocks) + head
        assert len(blocks) == 93
    # 176 and 192 share the final 6x6 map, 208 and 224 the final 7x7: each pair shares
    # the head and stage 5's 9 stride-1 blocks
    assert len(SPACE.all_blocks()) == 5 * 93 - 2 * 10
    assert len(SMALL.all_blocks()) == 2 * 93
    with pytest.raises(UnknownArch):
        SPACE.blocks_at_resolution(100)


def test_width_mult_scales_every_width_to_multiples_of_8() -> None:
    assert SMALL.stage_widths == (16, 24, 40, 56, 80)
    assert (SMALL.stem_width, SMALL.final_expand_width, SMALL.feature_width) == (8, 480, 640)
    assert all(b.param("c_out") % 8 == 0 for b in SMALL.all_blocks() if b.kind != "mbv3.head")
    assert make_divisible(35) == 32 and make_divisible(37) == 40 and make_divisible(3) == 8


def test_features_layout() -> None:
    feats = SPACE.features(SPACE.decode(MIN_160))
    assert len(feats) == 61
    assert feats[0] == 160.0
    assert feats[1:13] == [1.0, 3.0, 3.0, 1.0, 3.0, 3.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]


def test_chained_blocks_compute_the_network() -> None:
    """Block modules loaded with the net's weights, run one after another, give the net's output."""
    rng = random.Random(3)
    for _ in range(4):
        arch = SMALL.sample(rng)
        net = SMALL.build(arch)
        x = torch.randn(SMALL.input_shape(arch))
        h = x
        with torch.no_grad():
            for part, block in zip(net.block_modules(), SMALL.blocks(arch), strict=True):
                alone, shape = SMALL.build_block(block)
                alone.load_state_dict(part.state_dict())
                assert tuple(h.shape) == shape
                h = alone(h)
            assert torch.allclose(h, net(x), atol=1e-6)


def test_residual_only_where_shapes_match() -> None:
    arch = SMALL.sample(random.Random(0))
    net = SMALL.build(arch)
    for part, block in zip(net.block_modules(), SMALL.blocks(arch), strict=True):
        if block.kind == "mbv3.mbconv":
            same = block.param("stride") == 1 and block.param("c_in") == block.param("c_out")
            assert part.residual is same


def test_size_counts_every_combination() -> None:
    assert SMALL.size() == 2 * (9**2 + 9**3 + 9**4) ** 5


def test_bad_configurations_are_refused() -> None:
    for kwargs in (
        {"resolutions": ()},
        {"resolutions": (96, 96)},
        {"resolutions": (16,)},
        {"width_mult": 0},
        {"num_classes": 0},
    ):
        with pytest.raises(ValueError):
            MobileNetV3Space(**kwargs)  # type: ignore[arg-type]


def test_identity_names_the_non_default_options() -> None:
    assert SPACE.identity() == "mbv3"
    assert SMALL.identity() == 'mbv3{"num_classes":10,"resolutions":[96,128],"width_mult":0.5}'
    assert MobileNetV3Space(resolutions=(224, 160, 176, 192, 208)).identity() == "mbv3"
