"""CALNet: a CNN + CBAM attention + LSTM network for eclipsing binaries in TESS light curves.

After Wang et al. 2025 (arXiv:2504.15875). Two branches read the two views of a light
curve and are fused before the classifier:

- the **light-curve branch** takes the preprocessed curve (4,000 points, min-max
  normalised) through three CAP modules (Conv1d -> BatchNorm -> ReLU -> CBAM -> max-pool),
  then an LSTM whose last hidden state summarises the sequence;
- the **periodogram branch** takes the min-max normalised GLS periodogram (1,000 periods)
  through the same pattern, smaller (two CAP modules and a smaller LSTM);
- the two summaries are concatenated and classified by a small MLP into two logits
  (not EB, EB).

With ``n_scalars > 0`` (binarycat's default, see `binarycat.model.eb_data.amplitude_scalars`)
a few numbers per curve join the two summaries before the MLP: the depth and rise of the
curve before its min-max normalisation, which the published CALNet inputs do not carry.
``n_scalars = 0`` is the published network.

CBAM (Woo et al. 2018) is used in its 1-D form: channel attention from a shared MLP over
the average- and max-pooled sequence, then spatial (here: temporal) attention from a
convolution over the channel-wise mean and max.

The reference applies a softmax inside ``forward`` and then ``CrossEntropyLoss``, which
applies it again; here ``forward`` returns logits and the softmax is applied only when
probabilities are wanted (`probabilities`).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["CALNet", "CBAM1d", "CAP", "LC_LENGTH", "PERIODOGRAM_LENGTH", "probabilities"]

LC_LENGTH = 4000
PERIODOGRAM_LENGTH = 1000


class ChannelAttention1d(nn.Module):
    """CBAM channel attention: ``sigmoid(MLP(avgpool x) + MLP(maxpool x))`` per channel."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        hidden = max(channels // reduction, 2)
        self.mlp = nn.Sequential(nn.Conv1d(channels, hidden, 1), nn.ReLU(inplace=True),
                                 nn.Conv1d(hidden, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = self.mlp(x.mean(dim=2, keepdim=True))
        mx = self.mlp(x.amax(dim=2, keepdim=True))
        return x * torch.sigmoid(avg + mx)


class SpatialAttention1d(nn.Module):
    """CBAM spatial attention along the sequence: a convolution over channel mean and max."""

    def __init__(self, kernel_size: int = 7):
        super().__init__()
        self.conv = nn.Conv1d(2, 1, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(pooled))


class CBAM1d(nn.Module):
    """Channel attention followed by spatial attention (Woo et al. 2018), for sequences."""

    def __init__(self, channels: int, reduction: int = 4, kernel_size: int = 7):
        super().__init__()
        self.channel = ChannelAttention1d(channels, reduction)
        self.spatial = SpatialAttention1d(kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spatial(self.channel(x))


class CAP(nn.Module):
    """Convolution, Attention, Pooling: Conv1d -> BatchNorm -> ReLU -> CBAM -> MaxPool."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, pool: int):
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv1d(c_in, c_out, kernel_size, padding=kernel_size // 2, bias=False),
            nn.BatchNorm1d(c_out),
            nn.ReLU(inplace=True),
            CBAM1d(c_out),
            nn.MaxPool1d(pool),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class _Branch(nn.Module):
    """CAP modules, then an LSTM over the pooled sequence; returns the last hidden state."""

    def __init__(self, channels: list[int], kernels: list[int], pools: list[int], hidden: int):
        super().__init__()
        caps, c_in = [], 1
        for c, k, p in zip(channels, kernels, pools):
            caps.append(CAP(c_in, c, k, p))
            c_in = c
        self.caps = nn.Sequential(*caps)
        self.lstm = nn.LSTM(c_in, hidden, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.caps(x.unsqueeze(1))               # (B, C, L')
        _, (h, _) = self.lstm(feats.transpose(1, 2))    # h: (1, B, hidden)
        return h[-1]


class CALNet(nn.Module):
    """The two-branch CALNet classifier; ``forward(lc, periodogram)`` returns logits (B, 2).

    Parameters
    ----------
    width : int
        Channels of the first light-curve CAP module; the others scale with it.
    dropout : float
        Dropout before the last layer.
    n_scalars : int
        Per-curve numbers fused with the two branches (0: the published CALNet).

    Examples
    --------
    >>> net = CALNet()
    >>> net(torch.zeros(2, LC_LENGTH), torch.zeros(2, PERIODOGRAM_LENGTH)).shape
    torch.Size([2, 2])
    """

    def __init__(self, width: int = 16, dropout: float = 0.3, n_scalars: int = 0):
        super().__init__()
        w = width
        self.n_scalars = n_scalars
        self.lc_branch = _Branch([w, 2 * w, 4 * w], [9, 7, 5], [4, 4, 4], hidden=4 * w)
        self.gls_branch = _Branch([w // 2, w], [9, 5], [4, 4], hidden=2 * w)
        self.head = nn.Sequential(
            nn.Linear(6 * w + n_scalars, 4 * w), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(4 * w, 2))

    def forward(self, lc: torch.Tensor, periodogram: torch.Tensor,
                scalars: torch.Tensor | None = None) -> torch.Tensor:
        parts = [self.lc_branch(lc), self.gls_branch(periodogram)]
        if self.n_scalars:
            if scalars is None:
                raise ValueError(f"this CALNet fuses {self.n_scalars} per-curve scalars; pass them")
            parts.append(scalars.to(parts[0].dtype))
        return self.head(torch.cat(parts, dim=1))


def probabilities(logits: torch.Tensor) -> torch.Tensor:
    """P(eclipsing binary) from logits: the softmax's second column."""
    return torch.softmax(logits.float(), dim=1)[:, 1]
