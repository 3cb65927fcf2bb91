"""Network architectures."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import resnet34

__all__ = ["ARCHITECTURES", "build", "calnet", "stamp_resnet34"]


def stamp_resnet34(in_channels: int = 1, num_classes: int = 2) -> nn.Module:
    """torchvision ResNet34 trained from scratch, with a one-channel stem and a two-class head.

    The stem keeps torchvision's 7x7 stride-2 convolution and max-pool; only its input
    channels change. The head returns logits (softmax belongs to prediction, not ``forward``).
    """
    model = resnet34(weights=None, num_classes=num_classes)
    model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    return model


def calnet(width: int = 16, dropout: float = 0.3, n_scalars: int = 0) -> nn.Module:
    """The CALNet light-curve classifier (see `binarycat.model.calnet`)."""
    from binarycat.model.calnet import CALNet

    return CALNet(width=width, dropout=dropout, n_scalars=n_scalars)


ARCHITECTURES = {"resnet34": stamp_resnet34, "calnet": calnet}


def build(arch: str, **kwargs) -> torch.nn.Module:
    return ARCHITECTURES[arch](**kwargs)
