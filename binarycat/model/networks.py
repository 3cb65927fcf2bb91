"""Network architectures."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import resnet34

__all__ = ["ARCHITECTURES", "build", "calnet", "small_stamp_stem", "stamp_resnet34", "stamp_resnet34_stem"]

#: The custom stem halves the image until the ResNet body sees at most this many pixels a side.
BODY_INPUT_MAX = 16


def stamp_resnet34(in_channels: int = 1, num_classes: int = 2) -> nn.Module:
    """torchvision ResNet34 trained from scratch, with a one-channel stem and a two-class head.

    The stem keeps torchvision's 7x7 stride-2 convolution and max-pool; only its input
    channels change. The head returns logits (softmax belongs to prediction, not ``forward``).
    """
    model = resnet34(weights=None, num_classes=num_classes)
    model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    return model


def _conv_bn_relu(c_in: int, c_out: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


def small_stamp_stem(in_channels: int = 1, input_size: int = 64, out_channels: int = 64) -> nn.Sequential:
    """The custom convolutional layers put before the ResNet body for small star stamps.

    torchvision's stem (a 7x7 stride-2 convolution, then a 3x3 stride-2 max-pool) was made for
    224-px photographs: its max-pool keeps the brightest pixel of every 2x2 block and so throws
    away a faint companion next to a bright primary, and its 7x7 kernel mixes a close pair
    before any nonlinearity. This stem instead halves the image with 3x3 stride-2
    convolutions (32 -> 64 -> 64 ... channels), each followed by batch normalisation and
    ReLU, until it is at most `BODY_INPUT_MAX` pixels a side. Each 3x3 kernel still sees every
    input pixel (a pair two pixels apart stays two peaks in the first layer's 32 channels), and
    the downsampling is learned rather than a max.

    The ResNet body then always works on a 14-16 px map, whatever the input size: 64 px inputs
    are halved twice, 128 px three times, 224 px four times. The cost of a larger input is only
    in these few thin layers, not in the 33 convolutions of the body.
    """
    layers: list[nn.Module] = []
    channels, size = in_channels, input_size
    while size > BODY_INPUT_MAX:
        out = 32 if channels == in_channels else out_channels
        layers += _conv_bn_relu(channels, out, stride=2)
        channels, size = out, (size + 1) // 2
    if channels != out_channels:
        layers += _conv_bn_relu(channels, out_channels, stride=1)
    return nn.Sequential(*layers)


def stamp_resnet34_stem(in_channels: int = 1, num_classes: int = 2, input_size: int = 64) -> nn.Module:
    """ResNet34 (torchvision, from scratch) behind `small_stamp_stem` instead of its own stem.

    torchvision's ``conv1``, ``bn1``, ``relu`` and ``maxpool`` are replaced: ``conv1`` holds the
    custom stem and the other three become identities, so the residual body, pooling and
    two-class head (logits) are torchvision's own.
    """
    model = resnet34(weights=None, num_classes=num_classes)
    model.conv1 = small_stamp_stem(in_channels, input_size)
    model.bn1, model.relu, model.maxpool = nn.Identity(), nn.Identity(), nn.Identity()
    for m in model.conv1.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    return model


def calnet(width: int = 16, dropout: float = 0.3, n_scalars: int = 0) -> nn.Module:
    """The CALNet light-curve classifier (see `binarycat.model.calnet`)."""
    from binarycat.model.calnet import CALNet

    return CALNet(width=width, dropout=dropout, n_scalars=n_scalars)


ARCHITECTURES = {"resnet34": stamp_resnet34, "resnet34-stem": stamp_resnet34_stem, "calnet": calnet}


def build(arch: str, **kwargs) -> torch.nn.Module:
    return ARCHITECTURES[arch](**kwargs)
