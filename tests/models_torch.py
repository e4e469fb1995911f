"""User-style torch models for the compression tests and bench, written from the papers' layer tables.

torchvision cannot be installed beside the pinned torch, so the two
classics users quantize are written here:

* :func:`resnet18`: He et al., "Deep Residual Learning for Image
  Recognition" (2016), Table 1, 18-layer column: 7x7/2 conv 64, 3x3/2 max
  pool, four stages of two basic blocks (two 3x3 convs) at 64, 128, 256,
  512 channels, the first block of stages 2-4 with stride 2 and a 1x1/2
  projection shortcut (option B), global average pool, fc. 11,689,512
  parameters at 1000 classes.
* :func:`mobilenet_v2`: Sandler et al., "MobileNetV2: Inverted Residuals and
  Linear Bottlenecks" (2018), Table 2: 3x3/2 conv 32, then bottlenecks
  (t, c, n, s) = (1,16,1,1) (6,24,2,2) (6,32,3,2) (6,64,4,2) (6,96,3,1)
  (6,160,3,2) (6,320,1,1), 1x1 conv 1280, global pool, classifier; ReLU6,
  linear bottlenecks, residual when stride 1 and widths match. 3,504,872
  parameters at 1000 classes.

Plus :class:`TinyDigitsNet` (a few-thousand-parameter CNN that learns 8x8
digits in a second), :func:`train_briefly` and :func:`to_onnx`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from fleetnas.controller.compress import DatasetInputs

# The project's exporter (TorchScript path, validated, deterministic for a module);
# private in controller/export, used here rather than written a second time.
from fleetnas.controller.export import OPSET, module_to_onnx


# --- ResNet-18 ---------------------------------------------------------------------
class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers, ReLU between and after the residual add."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


def resnet18(num_classes: int = 1000, in_channels: int = 3) -> nn.Module:
    """ResNet-18 (Table 1 of the paper), in eval mode."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2, 1),
    ]
    c_in = 64
    for stage, width in enumerate((64, 128, 256, 512)):
        for i in range(2):
            layers.append(BasicBlock(c_in, width, 2 if stage > 0 and i == 0 else 1))
            c_in = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, num_classes)]
    return nn.Sequential(*layers).eval()


# --- MobileNetV2 -------------------------------------------------------------------
def _conv_bn(c_in: int, c_out: int, kernel: int, stride: int, groups: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(c_out),
    ]


class InvertedResidual(nn.Module):
    """1x1 expand (ReLU6, absent at t=1), 3x3 depthwise (ReLU6), linear 1x1 projection."""

    def __init__(self, c_in: int, c_out: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = c_in * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers += [*_conv_bn(c_in, mid, 1, 1), nn.ReLU6(inplace=True)]
        layers += [*_conv_bn(mid, mid, 3, stride, groups=mid), nn.ReLU6(inplace=True)]
        layers += _conv_bn(mid, c_out, 1, 1)
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return x + out if self.residual else out


MOBILENET_V2_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                         (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))  # fmt: skip


def mobilenet_v2(num_classes: int = 1000, in_channels: int = 3) -> nn.Module:
    """MobileNetV2 at width 1.0 (Table 2 of the paper), in eval mode."""
    layers: list[nn.Module] = [*_conv_bn(in_channels, 32, 3, 2), nn.ReLU6(inplace=True)]
    c_in = 32
    for t, c, n, s in MOBILENET_V2_SETTINGS:
        for i in range(n):
            layers.append(InvertedResidual(c_in, c, s if i == 0 else 1, t))
            c_in = c
    layers += [*_conv_bn(c_in, 1280, 1, 1), nn.ReLU6(inplace=True)]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(1280, num_classes)]
    return nn.Sequential(*layers).eval()


# --- a tiny net, training, export ----------------------------------------------------
class TinyDigitsNet(nn.Sequential):
    """For 8x8 inputs: conv 3x3 1->8, ReLU, conv 3x3/2 8->16, ReLU, flatten, linear 256->10 (no BN).

    Its initial weights come from ``seed`` (torch's global RNG is left as it was).
    """

    def __init__(self, classes: int = 10, channels: int = 1, *, seed: int = 0) -> None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            super().__init__(
                nn.Conv2d(channels, 8, 3, padding=1), nn.ReLU(),
                nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
                nn.Flatten(), nn.Linear(16 * 4 * 4, classes),
            )  # fmt: skip


def train_briefly(
    module: nn.Module,
    inputs: DatasetInputs,
    *,
    epochs: int = 3,
    lr: float = 0.05,
    momentum: float = 0.9,
    batch_size: int = 32,
    seed: int = 0,
    max_samples: int | None = None,
) -> nn.Module:
    """SGD with momentum on ``inputs``' training split (preprocessed like evaluation), seeded.

    BatchNorm statistics are then recomputed on the training data. Runs on one torch thread: on a loaded 2-core machine two threads were
    13x slower (measured: 20 s against 1.5 s for 135 steps). The update is
    written out rather than taken from ``torch.optim``, whose first use
    imports ``torch._dynamo`` (~10 s on such a machine). Returns the module
    in eval mode.
    """
    index = None
    if max_samples is not None:
        rng = np.random.default_rng(seed)
        index = np.sort(rng.permutation(len(inputs.dataset.y_train))[:max_samples])
    x = torch.from_numpy(inputs.images("train", index))
    y = torch.from_numpy(inputs.labels("train", index))
    classes = inputs.dataset.num_classes
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _sgd(module, x, y, classes, epochs=epochs, lr=lr, momentum=momentum,
             batch_size=batch_size, seed=seed)  # fmt: skip
        _recalibrate_batchnorm(module, x, batch_size)
    finally:
        torch.set_num_threads(threads)
    return module.eval()


def _recalibrate_batchnorm(module: nn.Module, x: torch.Tensor, batch_size: int) -> None:
    """Set every BatchNorm's running statistics to the training data's (a cumulative average).

    A few dozen steps leave the running averages near their initial values
    (momentum 0.1), so the net in eval mode would see the wrong statistics and
    answer the same class for every input; OFA recalibrates its subnets' BN the
    same way.
    """
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    module.train()
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            if len(x[start : start + batch_size]) >= 2:
                module(x[start : start + batch_size])
    for m, momentum in zip(norms, saved, strict=True):
        m.momentum = momentum


def _sgd(
    module: nn.Module, x: torch.Tensor, y: torch.Tensor, classes: int, *,
    epochs: int, lr: float, momentum: float, batch_size: int, seed: int,
) -> None:  # fmt: skip
    params = [p for p in module.parameters() if p.requires_grad]
    velocity = [torch.zeros_like(p) for p in params]
    loss_fn = nn.CrossEntropyLoss()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module.train()
        for _ in range(epochs):
            order = torch.randperm(len(y))
            for start in range(0, len(y), batch_size):
                index_t = order[start : start + batch_size]
                if len(index_t) < 2:  # BatchNorm cannot train on one sample
                    continue
                grads = torch.autograd.grad(
                    loss_fn(module(x[index_t])[:, :classes], y[index_t]), params
                )
                with torch.no_grad():
                    for p, g, v in zip(params, grads, velocity, strict=True):
                        v.mul_(momentum).add_(g)
                        p.sub_(lr * v)


def to_onnx(module: nn.Module, input_shape: tuple[int, ...]) -> bytes:
    """The module as ONNX (input ``x``, output ``y``), exported as controller/export exports archs."""
    return module_to_onnx(module.eval(), tuple(input_shape), OPSET)
