"""Variants of torchvision's families, built from torchvision's own classes.

Development networks: they share a family's blocks with networks the CPU validation
holds out (basic-block ResNets, ConvNeXt, MobileNetV3) without being any of them, so a
change to a profile can be judged on them before anyone looks at the held-out rows
(calibration/data/cpu-xeon-gnr-2c-dev3/). Use them as model specs, e.g.
``netcut predict netcut.zoo.variants:resnet10 --hw xeon-gnr-2c``.
"""

from __future__ import annotations

import torch.nn as nn
from torchvision.models.convnext import CNBlockConfig, ConvNeXt
from torchvision.models.mobilenetv3 import MobileNetV3, _mobilenet_v3_conf
from torchvision.models.resnet import BasicBlock, ResNet


def resnet10() -> nn.Module:
    """ResNet with one basic block per stage."""
    return ResNet(BasicBlock, [1, 1, 1, 1])


def resnet24() -> nn.Module:
    """ResNet with 2, 3, 4, 2 basic blocks: between resnet18 and resnet34."""
    return ResNet(BasicBlock, [2, 3, 4, 2])


def convnext_pico() -> nn.Module:
    """ConvNeXt at widths 64-512, depths 2, 2, 6, 2 (timm's "pico" shape)."""
    return ConvNeXt([CNBlockConfig(64, 128, 2), CNBlockConfig(128, 256, 2),
                     CNBlockConfig(256, 512, 6), CNBlockConfig(512, None, 2)])


def convnext_nano() -> nn.Module:
    """ConvNeXt at widths 80-640, depths 2, 2, 8, 2 (timm's "nano" shape)."""
    return ConvNeXt([CNBlockConfig(80, 160, 2), CNBlockConfig(160, 320, 2),
                     CNBlockConfig(320, 640, 8), CNBlockConfig(640, None, 2)])


def _mobilenet_v3(arch: str, width: float) -> nn.Module:
    setting, last_channel = _mobilenet_v3_conf(arch, width_mult=width)
    return MobileNetV3(setting, last_channel)


def mobilenet_v3_large_075() -> nn.Module:
    """MobileNetV3-Large at width 0.75 (a published width torchvision has no weights for)."""
    return _mobilenet_v3("mobilenet_v3_large", 0.75)


def mobilenet_v3_small_075() -> nn.Module:
    """MobileNetV3-Small at width 0.75."""
    return _mobilenet_v3("mobilenet_v3_small", 0.75)
