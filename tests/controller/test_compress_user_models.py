"""The user-style torch models of tests/models_torch.py match their papers' layer tables."""

from __future__ import annotations

import pytest
import torch

from tests.models_torch import mobilenet_v2, resnet18


def _params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(
    ("build", "params"),
    [(resnet18, 11_689_512), (mobilenet_v2, 3_504_872)],  # the published counts at 1000 classes
    ids=["resnet18", "mobilenet_v2"],
)
def test_parameter_counts_are_the_published_ones(build: object, params: int) -> None:
    assert _params(build()) == params  # type: ignore[operator]


def test_they_classify_any_resolution_into_the_asked_classes() -> None:
    x = torch.zeros(2, 3, 64, 64)
    with torch.no_grad():
        assert resnet18(num_classes=10)(x).shape == (2, 10)
        assert mobilenet_v2(num_classes=10)(x).shape == (2, 10)
    # ResNet-18: 8 basic blocks, 3 of them with a projection shortcut (Table 1, option B)
    convs = [m for m in resnet18().modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 1 + 8 * 2 + 3
    # MobileNetV2: 17 bottlenecks, 10 of them residual (stride 1, equal widths)
    blocks = [m for m in mobilenet_v2().modules() if type(m).__name__ == "InvertedResidual"]
    assert len(blocks) == 17 and sum(b.residual for b in blocks) == 10
