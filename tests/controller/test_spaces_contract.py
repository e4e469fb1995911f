"""The SearchSpace contract, checked against every built-in space.

Small configurations keep the torch builds fast; the default configurations
are checked where their size matters (parameter counts).
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from fleetnas.controller.spaces import (
    Block,
    MBv3Arch,
    MobileNetV3Space,
    NB201Arch,
    NB201Space,
    SearchSpace,
    UnknownArch,
    UnknownBlock,
    get_space,
)
from fleetnas.controller.spaces._mbv3 import DEPTHS, EXPANDS, KERNELS
from fleetnas.controller.spaces._nb201 import OPS

SPACES: dict[str, SearchSpace] = {
    "nb201": NB201Space(),
    "nb201-small": NB201Space(cells_per_stage=1, channels=8, num_classes=3),
    "mbv3-small": MobileNetV3Space(resolutions=(96, 128), width_mult=0.5, num_classes=10),
    "mbv3-width": MobileNetV3Space(
        resolutions=(96, 128), width_mult=0.5, num_classes=10, width_choices=(0.5, 0.75, 1.0)
    ),
}
FULL_SPACES: dict[str, SearchSpace] = {"nb201": NB201Space(), "mbv3": MobileNetV3Space()}


@pytest.fixture(params=sorted(SPACES))
def space(request: pytest.FixtureRequest) -> SearchSpace:
    return SPACES[request.param]


def archs_of(space: SearchSpace) -> st.SearchStrategy[Any]:
    """Every arch of the space is reachable (choices drawn directly, not through sample)."""
    if isinstance(space, NB201Space):
        return st.tuples(*[st.sampled_from(OPS)] * 6).map(NB201Arch)
    assert isinstance(space, MobileNetV3Space)
    block = st.tuples(st.sampled_from(KERNELS), st.sampled_from(EXPANDS))
    stage = st.sampled_from(DEPTHS).flatmap(lambda d: st.tuples(*[block] * d))
    widths = st.tuples(*[st.sampled_from(space.width_choices)] * 5)
    return st.builds(MBv3Arch, st.sampled_from(space.resolutions), st.tuples(*[stage] * 5), widths)


def choices_of(space: SearchSpace, arch: Any) -> dict[str, Any]:
    """The arch as a flat map choice -> value (absent slots are absent keys)."""
    if isinstance(space, NB201Space):
        return {f"edge{i}": op for i, op in enumerate(arch.ops)}
    out: dict[str, Any] = {"resolution": arch.resolution}
    for s, blocks in enumerate(arch.stages):
        out[f"depth{s}"] = len(blocks)
        for i, (k, e) in enumerate(blocks):
            out[f"k{s}.{i}"] = k
            out[f"e{s}.{i}"] = e
        out[f"w{s}"] = arch.widths[s]
    return out


def has_width_genes(space: SearchSpace) -> bool:
    return isinstance(space, MobileNetV3Space) and len(space.width_choices) > 1


def leaf_modules(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if not list(m.children())]


def macs_by_hooks(module: nn.Module, input_shape: tuple[int, ...]) -> int:
    """MACs of every Conv2d and Linear, measured on a real forward pass."""
    total = 0

    def hook(mod: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(mod, nn.Conv2d):
            kh, kw = mod.kernel_size
            total += output.numel() * (mod.in_channels // mod.groups) * kh * kw
        elif isinstance(mod, nn.Linear):
            total += output.numel() * mod.in_features

    handles = [
        m.register_forward_hook(hook)
        for m in module.modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    with torch.no_grad():
        module(torch.zeros(input_shape))
    for h in handles:
        h.remove()
    return total


# --- encodings -----------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SPACES))
def test_encoding_round_trips(name: str) -> None:
    space = SPACES[name]

    @settings(max_examples=200, deadline=None)
    @given(archs_of(space))
    def check(arch: Any) -> None:
        text = space.encode(arch)
        assert space.decode(text) == arch
        assert space.encode(space.decode(text)) == text

    check()


@pytest.mark.parametrize("name", sorted(SPACES))
def test_decode_rejects_or_canonicalises_arbitrary_text(name: str) -> None:
    space = SPACES[name]

    @settings(max_examples=300, deadline=None)
    @given(st.text(alphabet="|+~_0123456789kenorvcptslxaign,", max_size=80) | st.text(max_size=40))
    def check(text: str) -> None:
        try:
            arch = space.decode(text)
        except UnknownArch:
            return
        assert space.encode(arch) == text

    check()


@pytest.mark.parametrize(
    "text",
    [
        "",
        "garbage",
        "|none~0|",
        "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|+",
        " |none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
        "|none~1|+|none~0|none~1|+|none~0|none~1|none~2|",
        "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|",
        "r96|k3e3,k3e3|k3e3,k3e3|k3e3,k3e3|k3e3,k3e3",
        "r96|k3e3,k3e3|k3e3,k3e3|k3e3,k3e3|k3e3,k3e3|k3e3",
        "r96|k3e3,k3e3|k3e3,k3e3|k3e3,k3e3|k3e3,k3e3|k4e3,k3e3",
        "r096|k3e3,k3e3|k3e3,k3e3|k3e3,k3e3|k3e3,k3e3|k3e3,k3e3",
        "r97|k3e3,k3e3|k3e3,k3e3|k3e3,k3e3|k3e3,k3e3|k3e3,k3e3",
        "r96|k3e3,k3e3,k3e3,k3e3,k3e3|k3e3,k3e3|k3e3,k3e3|k3e3,k3e3|k3e3,k3e3",
        "r96|k3e3,k3e3|k3e3,k3e3|k3e3,k3e3|k3e3,k3e3|k3e3,k3e3,",
        "r96|k3e3,k3e3|k3e3,k3e3|k3e3,k3e3|k3e3,k3e3|k3e3,k3e3\n",
        "r224|k3e3,k3e3|k3e3,k3e3|k3e3,k3e3|k3e3,k3e3|k3e3,k3e3",  # not in mbv3-small
    ],
)
def test_decode_rejects_garbage(space: SearchSpace, text: str) -> None:
    with pytest.raises(UnknownArch):
        space.decode(text)


def test_methods_reject_foreign_archs(space: SearchSpace) -> None:
    other = SPACES["nb201"] if isinstance(space, MobileNetV3Space) else SPACES["mbv3-small"]
    foreign = other.sample(random.Random(0))
    for call in (space.encode, space.blocks, space.count_params, space.features):
        with pytest.raises(UnknownArch):
            call(foreign)


# --- sampling, mutation, crossover -------------------------------------------------


def test_same_seed_gives_same_samples(space: SearchSpace) -> None:
    def run(seed: int) -> list[str]:
        rng = random.Random(seed)
        out = []
        arch = space.sample(rng)
        for _ in range(20):
            other = space.sample(rng)
            child = space.crossover(arch, other, rng)
            arch = space.mutate(child, rng)
            out.extend(space.encode(a) for a in (other, child, arch))
        return out

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_mutate_changes_exactly_one_choice_and_stays_inside(space: SearchSpace) -> None:
    changed: Counter[str] = Counter()
    for seed in range(300):
        rng = random.Random(seed)
        arch = space.sample(rng)
        child = space.mutate(arch, rng)
        assert space.decode(space.encode(child)) == child
        before, after = choices_of(space, arch), choices_of(space, child)
        diff = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
        assert diff, "mutate returned the same arch"
        if isinstance(space, NB201Space):
            assert len(diff) == 1
        else:  # a depth change adds or drops whole slots; anything else changes one value
            depth_changes = {k for k in diff if k.startswith("depth")}
            if depth_changes:
                assert len(depth_changes) == 1
                stage = next(iter(depth_changes))[len("depth") :]
                assert all(k == f"depth{stage}" or k[1:].startswith(f"{stage}.") for k in diff)
            else:
                assert len(diff) == 1
        changed.update(k.rstrip("0123456789.") for k in diff)
    # every kind of choice gets mutated some time
    expected = {"edge"} if isinstance(space, NB201Space) else {"resolution", "depth", "k", "e"}
    if has_width_genes(space):
        expected.add("w")
    assert expected <= set(changed)


def test_crossover_takes_every_choice_from_a_parent(space: SearchSpace) -> None:
    mixed = 0
    for seed in range(300):
        rng = random.Random(seed)
        a, b = space.sample(rng), space.sample(rng)
        child = space.crossover(a, b, rng)
        assert space.decode(space.encode(child)) == child
        ca, cb, cc = choices_of(space, a), choices_of(space, b), choices_of(space, child)
        for key, value in cc.items():
            assert value in (ca.get(key), cb.get(key)), key
        mixed += cc != ca and cc != cb
    assert mixed > 100  # children really mix their parents


def test_crossover_of_identical_parents_is_the_parent(space: SearchSpace) -> None:
    rng = random.Random(3)
    for _ in range(20):
        a = space.sample(rng)
        assert space.crossover(a, a, rng) == a


def test_samples_cover_every_value_of_every_choice(space: SearchSpace) -> None:
    rng = random.Random(0)
    seen: dict[str, set[Any]] = {}
    for _ in range(400):
        for key, value in choices_of(space, space.sample(rng)).items():
            seen.setdefault(key, set()).add(value)
    if isinstance(space, NB201Space):
        assert all(values == set(OPS) for values in seen.values())
    else:
        assert seen["resolution"] == set(space.resolutions)
        assert seen["depth0"] == set(DEPTHS)
        assert seen["k4.3"] == set(KERNELS) and seen["e4.3"] == set(EXPANDS)
        assert isinstance(space, MobileNetV3Space)
        assert all(seen[f"w{s}"] == set(space.width_choices) for s in range(5))


def test_features_have_a_fixed_length_and_tell_archs_apart(space: SearchSpace) -> None:
    rng = random.Random(1)
    archs = {space.sample(rng) for _ in range(100)}
    vectors = [tuple(space.features(a)) for a in archs]
    assert len({len(v) for v in vectors}) == 1
    assert all(isinstance(x, float) for v in vectors for x in v)
    assert len(set(vectors)) == len(archs)


# --- blocks, counts, builds ----------------------------------------------------------


def random_archs(space: SearchSpace, n: int, seed: int = 0) -> list[Any]:
    rng = random.Random(seed)
    return [space.sample(rng) for _ in range(n)]


def test_blocks_are_inside_all_blocks(space: SearchSpace) -> None:
    every = space.all_blocks()
    assert len(every) == len(set(every)) and every == sorted(every)
    keys = {b.key for b in every}
    assert len(keys) == len(every)  # the text key is as distinct as the block
    used: set[Block] = set()
    for arch in random_archs(space, max(200, len(every))):  # width genes: 748 blocks
        blocks = space.blocks(arch)
        assert set(blocks) <= set(every)
        used.update(blocks)
    # random archs use (nearly) all of them: the LUT lists nothing no arch can contain
    assert len(used) >= 0.9 * len(every)


def test_block_keys_cover_exactly_the_built_modules(space: SearchSpace) -> None:
    """Every leaf module and parameter of build(arch) is in exactly one block's module,
    and that module is the one build_block makes for the block (same types and shapes)."""
    for arch in random_archs(space, 12, seed=5):
        net = space.build(arch)
        blocks = space.blocks(arch)
        parts = net.block_modules()
        assert len(parts) == len(blocks)
        owners: Counter[int] = Counter()
        for part in parts:
            owners.update(id(m) for m in leaf_modules(part))
        assert {id(m) for m in leaf_modules(net)} == set(owners)
        assert all(n == 1 for n in owners.values())
        param_owners: Counter[int] = Counter(id(p) for part in parts for p in part.parameters())
        assert set(param_owners) == {id(p) for p in net.parameters()}
        assert all(n == 1 for n in param_owners.values())
        for part, block in zip(parts, blocks, strict=True):
            alone, _ = space.build_block(block)
            assert type(alone) is type(part)
            assert [(k, v.shape) for k, v in alone.state_dict().items()] == [
                (k, v.shape) for k, v in part.state_dict().items()
            ], block.key


def test_build_block_runs_and_shapes_chain(space: SearchSpace) -> None:
    """Each block's output has the next block's input shape (both spaces are shape-sequential)."""
    for arch in random_archs(space, 6, seed=2):
        blocks = space.blocks(arch)
        shape = space.input_shape(arch)
        for block in blocks:
            module, input_shape = space.build_block(block)
            assert input_shape == shape, block.key
            assert not module.training
            with torch.no_grad():
                shape = tuple(module(torch.randn(input_shape)).shape)
        with torch.no_grad():
            assert shape == tuple(space.build(arch)(torch.zeros(space.input_shape(arch))).shape)


def test_all_blocks_build_and_run(space: SearchSpace) -> None:
    blocks = space.all_blocks()
    if len(blocks) > 60:
        blocks = random.Random(0).sample(blocks, 60)
    for block in blocks:
        module, shape = space.build_block(block)
        with torch.no_grad():
            out = module(torch.randn(shape))
        assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", sorted(SPACES) + ["mbv3"])
def test_count_params_matches_torch(name: str) -> None:
    space = {**SPACES, **FULL_SPACES}[name]
    for arch in random_archs(space, 4 if name == "mbv3" else 15, seed=11):
        net = space.build(arch)
        assert space.count_params(arch) == sum(p.numel() for p in net.parameters())
        assert space.count_params(arch) == sum(
            sum(p.numel() for p in space.build_block(b)[0].parameters()) for b in space.blocks(arch)
        )


@pytest.mark.parametrize("name", sorted(SPACES) + ["mbv3"])
def test_count_flops_matches_conv_and_linear_macs(name: str) -> None:
    space = {**SPACES, **FULL_SPACES}[name]
    for arch in random_archs(space, 3 if name == "mbv3" else 8, seed=12):
        assert space.count_flops(arch) == macs_by_hooks(space.build(arch), space.input_shape(arch))


def test_build_is_eval_mode_and_runs(space: SearchSpace) -> None:
    arch = space.sample(random.Random(4))
    net = space.build(arch)
    assert not net.training and all(not m.training for m in net.modules())
    with torch.no_grad():
        out = net(torch.randn(space.input_shape(arch)))
    assert out.ndim == 2 and torch.isfinite(out).all()


BAD_BLOCKS = [
    Block.of("nb201.op", op="none", c=16, hw=32),
    Block.of("nb201.op", op="nor_conv_3x3", c=16),
    Block.of("nb201.op", op="nor_conv_3x3", c=16, hw=32, extra=1),
    Block.of("nb201.op", op="nor_conv_3x3", c=0, hw=32),
    Block.of("nb201.reduce", c_in=16, c_out=32, hw=31),
    Block.of("mbv3.stem", c_out=True, hw=96),
    Block.of(
        "mbv3.mbconv", kernel=4, expand=3, c_in=16, c_out=24, stride=1, hw=48, se=False, act="relu"
    ),
    Block.of(
        "mbv3.mbconv", kernel=3, expand=3, c_in=16, c_out=24, stride=3, hw=48, se=False, act="relu"
    ),
    Block.of(
        "mbv3.mbconv", kernel=3, expand=3, c_in=16, c_out=24, stride=1, hw=48, se=False, act="gelu"
    ),
    Block.of("unknown", c=1),
]


def test_build_block_rejects_foreign_and_malformed_blocks(space: SearchSpace) -> None:
    other = SPACES["nb201"] if isinstance(space, MobileNetV3Space) else SPACES["mbv3-small"]
    for block in [*BAD_BLOCKS, *other.all_blocks()[:3]]:
        with pytest.raises(UnknownBlock):
            space.build_block(block)


def test_config_rebuilds_an_equal_space(space: SearchSpace) -> None:
    again = get_space(space.name, space.config())
    assert again.identity() == space.identity()
    rng = random.Random(9)
    for arch in random_archs(space, 10):
        assert again.blocks(arch) == space.blocks(arch)
        assert again.count_params(arch) == space.count_params(arch)
    assert again.sample(rng) == space.sample(random.Random(9))


def test_sampling_only_options_change_no_network(space: SearchSpace) -> None:
    """network_identity() is identity() less the sampling-only options, and the space without
    them builds, for each of its archs, the same network as this one (the hook's soundness)."""
    config = space.config()
    narrow_config = {k: v for k, v in config.items() if k not in space.sampling_only_options}
    narrow = get_space(space.name, narrow_config)
    assert space.network_identity() == narrow.identity() == narrow.network_identity()
    assert (space.network_identity() == space.identity()) == (narrow_config == config)
    for arch in random_archs(narrow, 20, seed=13):
        text = narrow.encode(arch)
        assert space.encode(space.decode(text)) == text
        assert space.blocks(space.decode(text)) == narrow.blocks(arch)
