"""The OFA/MobileNetV3-style space: encoding, skeleton, LUT blocks per resolution, chained
blocks, width genes."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import torch

from fleetnas.controller.spaces import (
    Block,
    MBv3Arch,
    MobileNetV3Space,
    UnknownArch,
    get_space,
)
from fleetnas.controller.spaces._mbv3 import EXPANDS, KERNELS, STAGES, make_divisible

SPACE = MobileNetV3Space()
SMALL = MobileNetV3Space(resolutions=(96, 128), width_mult=0.5, num_classes=10)
WIDTHS = (0.5, 0.75, 1.0)
SPACE_W = MobileNetV3Space(width_choices=WIDTHS)
SMALL_W = MobileNetV3Space(
    resolutions=(96, 128), width_mult=0.5, num_classes=10, width_choices=WIDTHS
)

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


def test_bad_width_choices_are_refused() -> None:
    for choices in ((), (0,), (1.0, 1), (True,), (0.04,), (4.5,), "0.5", (math.nan,), (1.0, None)):
        with pytest.raises(ValueError, match="width_choices"):
            MobileNetV3Space(width_choices=choices)  # type: ignore[arg-type]


# --- width genes: nothing changes while they are off -----------------------------------------

# Taken on main at 3a48107, before width genes existed (torch 2.13.0+cpu): digests of a
# sample/crossover/mutate chain (see _fingerprint), and the ONNX sha256 and weights of its
# first arch.
MAIN_TORCH = "2.13.0+cpu"
MAIN_FINGERPRINTS: dict[str, dict[str, Any]] = {
    "default": {
        "encodings": "c98a851762bd90b3",
        "next_draw": 0.4832350874600537,
        "features": "6c9a399a1af970a6",
        "blocks": "c9acb7fbae2dba83",
        "counts": "570b87b9d7d9999e",
        "all_blocks": "a88f01263836633d",
        "first": "r176|k3e6,k7e4|k3e3,k3e3|k3e3,k5e4|k7e6,k7e3|k7e3,k5e4",
    },
    "small": {
        "encodings": "b7fe9b757d8b0fd7",
        "next_draw": 0.11684735722502215,
        "features": "779251aaacef217e",
        "blocks": "0bd1d43c02305b47",
        "counts": "ba501c006f704e5e",
        "all_blocks": "0689a15194c1074b",
        "first": "r128|k3e3,k3e3|k3e3,k5e4|k7e6,k7e3|k7e3,k5e4|k5e4,k3e3",
    },
}
MAIN_NETWORKS = {  # first arch: (ONNX sha256, digest of the exported weights)
    "default": (
        "d68e6581107c58b1a06a308697c59476e6cf7ca6463393bea6990185eac85a2e",
        "58f363581ae359ae",
    ),
    "small": (
        "fdad3863ac5d4f3998d9cb47a206e35d9eabbbd9ca06d2768aab70e713b6f2ff",
        "5570b6421c30ceef",
    ),
}
DEFAULT_CONFIGS = {"default": SPACE, "small": SMALL}


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def _fingerprint(space: MobileNetV3Space, seed: int = 5, n: int = 12) -> dict[str, Any]:
    rng = random.Random(seed)
    archs = []
    arch = space.sample(rng)
    for _ in range(n):
        other = space.sample(rng)
        child = space.crossover(arch, other, rng)
        arch = space.mutate(child, rng)
        archs.extend([other, child, arch])
    return {
        "encodings": _digest([space.encode(a) for a in archs]),
        "next_draw": rng.random(),  # the same number of draws, too
        "features": _digest([space.features(a) for a in archs]),
        "blocks": _digest([[b.key for b in space.blocks(a)] for a in archs]),
        "counts": _digest([[space.count_params(a), space.count_flops(a)] for a in archs]),
        "all_blocks": _digest([b.key for b in space.all_blocks()]),
        "first": space.encode(archs[0]),
    }


def _weights_digest(module: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


@pytest.mark.parametrize("name", sorted(DEFAULT_CONFIGS))
def test_default_width_choices_change_nothing_since_main(name: str) -> None:
    space = DEFAULT_CONFIGS[name]
    assert space.width_choices == (1.0,) and "width_choices" not in space.config()
    assert space.identity() == space.network_identity()
    assert _fingerprint(space) == MAIN_FINGERPRINTS[name]
    assert space.size() == len(space.resolutions) * (9**2 + 9**3 + 9**4) ** 5


@pytest.mark.parametrize("name", sorted(DEFAULT_CONFIGS))
def test_default_and_width_spaces_export_mains_bytes(name: str, tmp_path: Path) -> None:
    """The first arch of the chain exports to main's bytes, from the default space and,
    through the identity hook, from the same configuration with width genes on."""
    from fleetnas.controller.export import arch_module, export_arch

    assert torch.__version__ == MAIN_TORCH, (
        f"the stored ONNX hashes were taken with torch {MAIN_TORCH}: re-take them with "
        f"torch {torch.__version__} on a commit before width genes (3a48107)"
    )
    space = DEFAULT_CONFIGS[name]
    wide = get_space("mbv3", {**space.config(), "width_choices": list(WIDTHS)})
    assert isinstance(wide, MobileNetV3Space)
    encoding = MAIN_FINGERPRINTS[name]["first"]
    for configured in (space, wide):
        arch = configured.decode(encoding)
        assert arch.widths == (1.0,) * 5
        model = export_arch(configured, arch, cache_dir=tmp_path / name)
        module, _ = arch_module(configured, arch)
        assert (model.sha256, _weights_digest(module)) == MAIN_NETWORKS[name]
        assert model.space == space.identity()
    assert wide.identity() != space.identity()


# --- width genes: encoding, arch, identity ------------------------------------------------


def test_width_encoding_prefixes_stages_off_full_width() -> None:
    arch = MBv3Arch(
        160,
        (((3, 4), (5, 6)), ((7, 3),) * 3, ((3, 3),) * 2, ((5, 4),) * 2, ((7, 6),) * 4),
        (1.0, 0.75, 0.5, 1.0, 0.5),
    )
    text = SPACE_W.encode(arch)
    assert (
        text
        == "r160|k3e4,k5e6|w0.75:k7e3,k7e3,k7e3|w0.5:k3e3,k3e3|k5e4,k5e4|w0.5:k7e6,k7e6,k7e6,k7e6"
    )
    assert SPACE_W.decode(text) == arch
    # a full-width arch keeps its encoding and equals the arch built without widths
    full = SPACE_W.decode(MIN_160)
    assert full == MBv3Arch(full.resolution, full.stages) and SPACE_W.encode(full) == MIN_160
    assert SPACE_W.blocks(full) == SPACE.blocks(SPACE.decode(MIN_160))


@pytest.mark.parametrize(
    "text",
    [
        "r160|w1.0:k3e3,k3e3|k3e3,k3e3|k3e3,k3e3|k3e3,k3e3|k3e3,k3e3",  # 1.0 is never written
        "r160|w0.50:k3e3,k3e3|k3e3,k3e3|k3e3,k3e3|k3e3,k3e3|k3e3,k3e3",
        "r160|w.5:k3e3,k3e3|k3e3,k3e3|k3e3,k3e3|k3e3,k3e3|k3e3,k3e3",
        "r160|w0.6:k3e3,k3e3|k3e3,k3e3|k3e3,k3e3|k3e3,k3e3|k3e3,k3e3",  # not a choice
        "r160|w0.5k3e3,k3e3|k3e3,k3e3|k3e3,k3e3|k3e3,k3e3|k3e3,k3e3",
        "r160|w0.5:|k3e3,k3e3|k3e3,k3e3|k3e3,k3e3|k3e3,k3e3",
        "r160|k3e3,w0.5:k3e3|k3e3,k3e3|k3e3,k3e3|k3e3,k3e3|k3e3,k3e3",
        "r160|w5e-1:k3e3,k3e3|k3e3,k3e3|k3e3,k3e3|k3e3,k3e3|k3e3,k3e3",
    ],
)
def test_width_decode_accepts_only_canonical_choices(text: str) -> None:
    with pytest.raises(UnknownArch):
        SPACE_W.decode(text)


def test_width_archs_belong_only_to_spaces_that_allow_them() -> None:
    text = "r160|w0.5:k3e3,k3e3|k3e3,k3e3|k3e3,k3e3|k3e3,k3e3|k3e3,k3e3"
    arch = SPACE_W.decode(text)
    with pytest.raises(UnknownArch, match="width choices"):
        SPACE.decode(text)
    for call in (SPACE.encode, SPACE.blocks, SPACE.features):
        with pytest.raises(UnknownArch, match="width choices"):
            call(arch)
    half = MobileNetV3Space(width_choices=(0.5,))  # one choice: every stage at 0.5
    assert half.decode(text.replace("|k3e3", "|w0.5:k3e3")).widths == (0.5,) * 5
    with pytest.raises(UnknownArch):
        half.decode(MIN_160)
    with pytest.raises(UnknownArch):  # an int width is not a choice's float
        SPACE_W.encode(MBv3Arch(arch.resolution, arch.stages, (1, 1, 1, 1, 1)))  # type: ignore[arg-type]


def test_width_choices_are_sampling_only_in_the_identity() -> None:
    assert SPACE_W.config() == {"width_choices": [0.5, 0.75, 1.0]}
    assert SPACE_W.identity() == 'mbv3{"width_choices":[0.5,0.75,1.0]}'
    assert SPACE_W.network_identity() == "mbv3" == SPACE.identity()
    assert SMALL_W.network_identity() == SMALL.identity()
    again = get_space("mbv3", json.loads(json.dumps(SPACE_W.config())))
    assert again.identity() == SPACE_W.identity()
    assert MobileNetV3Space(width_choices=(1, 0.5, 0.75)).identity() == SPACE_W.identity()


# --- width genes: blocks, counts, LUT enumeration --------------------------------------------


def test_stage_channels_follow_width_and_width_mult() -> None:
    assert [sorted(c.values()) for c in SPACE_W.stage_channels] == [
        [16, 24, 24],
        [24, 32, 40],
        [40, 64, 80],
        [56, 88, 112],
        [80, 120, 160],
    ]
    for channels, base, spec in zip(
        SMALL_W.stage_channels, SMALL.stage_widths, STAGES, strict=True
    ):
        assert channels[1.0] == base
        assert all(c == make_divisible(spec.width * 0.5 * w) for w, c in channels.items())


def test_blocks_follow_the_stage_widths() -> None:
    """c_out of a stage's blocks, c_in of the next stage's first block and of the head."""
    arch = SPACE_W.decode(
        "r224|k3e3,k3e3|w0.5:k5e4,k5e4,k5e4|k7e6,k7e6|w0.75:k3e3,k3e3|w0.5:k5e6,k5e6"
    )
    blocks = SPACE_W.blocks(arch)
    assert blocks[0] == Block.of("mbv3.stem", c_out=16, hw=224)
    assert blocks[1].param("c_out") == 16  # the first block stays fixed
    pairs = [(b.param("c_in"), b.param("c_out")) for b in blocks[2:-1]]
    assert pairs == [
        (16, 24), (24, 24),
        (24, 24), (24, 24), (24, 24),
        (24, 80), (80, 80),
        (80, 88), (88, 88),
        (88, 80), (80, 80),
    ]  # fmt: skip
    assert blocks[-1] == Block.of("mbv3.head", c_in=80, c_mid=960, c_out=1280, classes=1000, hw=7)
    narrower = SPACE_W.decode(
        "r224|w0.5:k3e3,k3e3|w0.5:k5e4,k5e4,k5e4|w0.5:k7e6,k7e6|w0.5:k3e3,k3e3|w0.5:k5e6,k5e6"
    )
    full = SPACE_W.decode("r224|k3e3,k3e3|k5e4,k5e4,k5e4|k7e6,k7e6|k3e3,k3e3|k5e6,k5e6")
    assert SPACE_W.count_params(narrower) < SPACE_W.count_params(arch) < SPACE_W.count_params(full)
    assert SPACE_W.count_flops(narrower) < SPACE_W.count_flops(arch) < SPACE_W.count_flops(full)


def test_width_counts_equal_the_built_network_and_its_blocks() -> None:
    """Full-size width archs: params and MACs of blocks() sum to the whole network's."""
    from tests.controller.test_spaces_contract import macs_by_hooks

    rng = random.Random(21)
    archs = [SPACE_W.sample(rng) for _ in range(3)]
    assert any(w != 1.0 for a in archs for w in a.widths)
    for arch in archs:
        net = SPACE_W.build(arch)
        params = SPACE_W.count_params(arch)
        assert params == sum(p.numel() for p in net.parameters())
        assert params == sum(
            sum(p.numel() for p in SPACE_W.build_block(b)[0].parameters())
            for b in SPACE_W.blocks(arch)
        )
        assert SPACE_W.count_flops(arch) == macs_by_hooks(net, SPACE_W.input_shape(arch))


def _expected_block_count(space: MobileNetV3Space) -> int:
    """The count blocks_at_resolution's docstring states."""
    channels = [{space.first_width}] + [set(c.values()) for c in space.stage_channels]
    per_block = len(KERNELS) * len(EXPANDS)
    total = 2 + len(channels[-1])
    for s in range(1, len(channels)):
        total += per_block * len(channels[s]) * (len(channels[s - 1]) + 1)
    return total - per_block * len(channels[3] & channels[4])


def _reaching_archs(space: MobileNetV3Space, resolution: int) -> list[MBv3Arch]:
    """Archs that, between them, hold every block a stage can have: per stage, every pair of
    (previous stage's width, its width) and every (kernel, expand), at depth 2."""
    out = []
    for s in range(len(STAGES)):
        before = space.width_choices if s else (space.width_choices[0],)
        for w_prev, w, kernel, expand in itertools.product(
            before, space.width_choices, KERNELS, EXPANDS
        ):
            widths = [space.width_choices[0]] * len(STAGES)
            if s:
                widths[s - 1] = w_prev
            widths[s] = w
            stages = [((3, 3),) * 2] * len(STAGES)
            stages[s] = ((kernel, expand),) * 2
            out.append(MBv3Arch(resolution, tuple(stages), tuple(widths)))
    return out


@pytest.mark.parametrize(
    "space",
    [SPACE, SMALL, SPACE_W, SMALL_W, MobileNetV3Space(width_choices=(0.5, 1.0, 1.5))],
    ids=["default", "small", "width", "small-width", "width-apart"],
)
def test_blocks_at_resolution_is_exactly_what_archs_reach(space: MobileNetV3Space) -> None:
    for resolution in space.resolutions[:2]:
        listed = space.blocks_at_resolution(resolution)
        reached = {b for a in _reaching_archs(space, resolution) for b in space.blocks(a)}
        assert set(listed) == reached
        assert len(listed) == _expected_block_count(space)
    assert _expected_block_count(SPACE) == 93
    assert _expected_block_count(SPACE_W) == 446
    assert _expected_block_count(MobileNetV3Space(width_choices=(0.5, 1.0, 1.5))) == 491
    # as without widths, 176/192 and 208/224 share their head and stage 5's stride-1 blocks
    assert len(SPACE_W.all_blocks()) == 5 * 446 - 2 * (3 + 9 * 3)


def test_width_size_and_features() -> None:
    assert SMALL_W.size() == 2 * (3 * (9**2 + 9**3 + 9**4)) ** 5
    arch = SPACE_W.decode("r160|w0.5:k3e3,k3e3|k3e3,k3e3|w0.75:k3e3,k3e3|k3e3,k3e3|k3e3,k3e3")
    feats = SPACE_W.features(arch)
    assert len(feats) == 66
    assert feats[:61] == SPACE.features(SPACE.decode(MIN_160))
    assert feats[61:] == [0.5, 1.0, 0.75, 1.0, 1.0]


# --- width genes: a search and its exports -----------------------------------------------


def test_width_search_runs_exports_and_resumes(tmp_path: Path) -> None:
    """A tiny NSGA-II search over width genes, its front exported, recorded and run in
    onnxruntime; its state resumes in the same space only."""
    from fleetnas.controller.costdb import CostDB
    from fleetnas.controller.export import register_arch
    from fleetnas.controller.search import CallableObjective, NSGA2Strategy, SearchEngine

    space = get_space("mbv3", {**SMALL.config(), "width_choices": [0.5, 0.75, 1.0]})

    def engine() -> SearchEngine:
        return SearchEngine(
            space,
            NSGA2Strategy(population_size=6),
            [
                CallableObjective("params", space.count_params),
                CallableObjective("flops", space.count_flops, direction="maximize"),
            ],
            seed=3,
        )

    search = engine()
    trials = search.run(n_trials=18)
    assert len({t.candidate.encoding for t in trials}) == 18
    assert {w for t in trials for w in t.candidate.arch.widths} == {0.5, 0.75, 1.0}
    front = search.pareto_front()
    assert front and any(w != 1.0 for t in front for w in t.candidate.arch.widths)

    state = json.loads(json.dumps(search.state_dict()))
    resumed = SearchEngine.from_state_dict(state, space, objectives=engine().objectives)
    assert [c.encoding for c in resumed.ask(4)] == [c.encoding for c in search.ask(4)]
    with pytest.raises(ValueError, match="ran on space"):  # identity() keeps width_choices
        SearchEngine.from_state_dict(state, SMALL, objectives=engine().objectives)

    with CostDB(tmp_path / "cost.db") as db:
        for trial in front[:3]:
            arch = space.decode(trial.candidate.encoding)
            ref = register_arch(db, space, arch, cache_dir=tmp_path / "onnx")
            model = db.get_model(ref.sha256)
            assert model is not None
            assert (model.space, model.arch) == (space.network_identity(), trial.candidate.encoding)
            assert model.params == space.count_params(arch)
            assert ref.path is not None
            session = ort.InferenceSession(
                ref.path.read_bytes(), providers=["CPUExecutionProvider"]
            )
            (out,) = session.run(None, {"x": np.zeros(space.input_shape(arch), np.float32)})
            assert out.shape == (1, 10) and np.isfinite(out).all()
