"""Network architectures."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torchvision.models import resnet34

from binarycat.errors import BinarycatError

__all__ = ["ARCHITECTURES", "SurveyFiLMResNet", "build", "calnet", "conditioning_surveys", "small_stamp_stem",
           "stamp_logits", "stamp_resnet34", "stamp_resnet34_stem", "stamp_resnet34_stem_film", "survey_indices"]

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


class SurveyFiLMResNet(nn.Module):
    """A stamp ResNet told which survey each stamp comes from, by feature-wise modulation.

    After each of the four residual stages every channel ``c`` of a stamp from survey ``s`` is
    scaled and shifted, ``h * (1 + gamma[s, c]) + beta[s, c]`` (FiLM, Perez et al. 2018), with
    ``gamma`` and ``beta`` learned per survey. The label rule of a resolved pair depends on the
    survey's FWHM, which the image alone only shows through a possibly blended PSF; the
    modulation lets one network keep a separate boundary per survey while sharing every
    convolution. The modulations start at zero, so an untrained one is exactly the wrapped
    network, and a model trained without it can be fine-tuned with it
    (``train --init-from ID --arch resnet34-stem-film``).

    Parameters
    ----------
    net : torchvision ResNet
        The network to modulate (e.g. `stamp_resnet34_stem`); its weights live under ``net.``.
    surveys : sequence of str
        The surveys it knows, in the order of the indices ``forward`` takes.

    ``forward(x, survey)`` takes the (N, 1, S, S) batch and an (N,) int64 tensor of indices
    into ``surveys`` (see `conditioning_surveys`) and returns logits.
    """

    def __init__(self, net: nn.Module, surveys: Sequence[str]):
        super().__init__()
        if not surveys:
            raise ValueError("A survey-conditioned network needs at least one survey.")
        self.net = net
        self.surveys = list(surveys)
        widths = [layer[-1].conv2.out_channels for layer in self._stages()]
        self.film = nn.ModuleList(nn.Embedding(len(self.surveys), 2 * w) for w in widths)
        for emb in self.film:
            nn.init.zeros_(emb.weight)

    def _stages(self) -> list[nn.Module]:
        return [self.net.layer1, self.net.layer2, self.net.layer3, self.net.layer4]

    def forward(self, x: torch.Tensor, survey: torch.Tensor) -> torch.Tensor:
        n = self.net
        h = n.maxpool(n.relu(n.bn1(n.conv1(x))))
        for stage, film in zip(self._stages(), self.film):
            h = stage(h)
            gamma, beta = film(survey).to(h.dtype)[:, :, None, None].chunk(2, dim=1)
            h = h * (1 + gamma) + beta
        return n.fc(torch.flatten(n.avgpool(h), 1))


def stamp_resnet34_stem_film(in_channels: int = 1, num_classes: int = 2, input_size: int = 64,
                             surveys: Sequence[str] = ()) -> SurveyFiLMResNet:
    """`stamp_resnet34_stem` with per-survey FiLM after each residual stage (`SurveyFiLMResNet`)."""
    return SurveyFiLMResNet(stamp_resnet34_stem(in_channels, num_classes, input_size), surveys)


def conditioning_surveys(model: nn.Module) -> list[str] | None:
    """The surveys a network is conditioned on (its ``forward`` takes their indices), or None."""
    return list(model.surveys) if isinstance(model, SurveyFiLMResNet) else None


def survey_indices(known: Sequence[str] | None, names: Sequence[str]) -> torch.Tensor | None:
    """Indices of ``names`` in the surveys a network is conditioned on (None: it is not).

    Raises
    ------
    BinarycatError
        A name the network was not trained on: it has no modulation for it.
    """
    if known is None:
        return None
    lookup = {name: i for i, name in enumerate(known)}
    unknown = sorted(set(names) - set(lookup))
    if unknown:
        raise BinarycatError(f"The model is conditioned on {', '.join(known)} and cannot classify stamps of "
                             f"{', '.join(unknown)}; use a model trained on them.")
    return torch.tensor([lookup[name] for name in names], dtype=torch.long)


def stamp_logits(model: nn.Module, x: torch.Tensor, survey: torch.Tensor | None = None) -> torch.Tensor:
    """``model(x)``, or ``model(x, survey)`` for a survey-conditioned network (`SurveyFiLMResNet`)."""
    if isinstance(model, SurveyFiLMResNet):
        if survey is None:
            raise ValueError("A survey-conditioned network needs the survey index of every stamp.")
        return model(x, survey.to(x.device))
    return model(x)


def calnet(width: int = 16, dropout: float = 0.3, n_scalars: int = 0) -> nn.Module:
    """The CALNet light-curve classifier (see `binarycat.model.calnet`)."""
    from binarycat.model.calnet import CALNet

    return CALNet(width=width, dropout=dropout, n_scalars=n_scalars)


ARCHITECTURES = {"resnet34": stamp_resnet34, "resnet34-stem": stamp_resnet34_stem,
                 "resnet34-stem-film": stamp_resnet34_stem_film, "calnet": calnet}


def build(arch: str, **kwargs) -> torch.nn.Module:
    return ARCHITECTURES[arch](**kwargs)
