"""HiResNet-18 (CIFAR form) written by hand from torchvision's parts: the baseline a compiled spec must match.

This is how one would write ``specs/hiresnet18.yaml`` without hrgraph: torchvision's
``BasicBlock`` stages, a 3x3 stem, and the six hierarchical residuals as
AvgPool2d -> 1x1 conv -> BN, summed onto each target stage's output.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock


def _stage(cin: int, cout: int, stride: int) -> nn.Sequential:
    down = None
    if stride != 1 or cin != cout:
        down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))
    return nn.Sequential(BasicBlock(cin, cout, stride, down), BasicBlock(cout, cout))


def _projection(cin: int, cout: int, pool: int) -> nn.Sequential:
    return nn.Sequential(nn.AvgPool2d(pool, pool), nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))


class HandHiResNet18(nn.Module):
    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True))
        self.layer1 = _stage(64, 64, 1)
        self.layer2 = _stage(64, 128, 2)
        self.layer3 = _stage(128, 256, 2)
        self.layer4 = _stage(256, 512, 2)
        self.p02 = _projection(64, 128, 2)
        self.p03 = _projection(64, 256, 4)
        self.p04 = _projection(64, 512, 8)
        self.p13 = _projection(64, 256, 4)
        self.p14 = _projection(64, 512, 8)
        self.p24 = _projection(128, 512, 4)
        self.fc = nn.Linear(512, classes)

    def forward(self, x: Tensor) -> Tensor:
        s = self.stem(x)
        y1 = self.layer1(s)
        y2 = self.layer2(y1) + self.p02(s)
        y3 = self.layer3(y2) + self.p03(s) + self.p13(y1)
        y4 = self.layer4(y3) + self.p04(s) + self.p14(y1) + self.p24(y2)
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(y4, 1), 1))
