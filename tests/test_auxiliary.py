"""Pair geometry as an auxiliary target: reading the margins, the masked loss, and the head."""

from __future__ import annotations

import csv
import math

import pytest
import torch

from binarycat.errors import BinarycatError
from binarycat.model.auxiliary import PairMarginHead, margin_loss, margin_targets, read_pair_geometry
from binarycat.model.networks import build

HEADER = ("source_id", "survey", "label", "is_binary", "separation_arcsec", "fwhm_arcsec", "flux_ratio",
          "companion_snr")


def _truth(path, rows):
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([HEADER, *rows])
    return path


def test_margins_are_log2_distances_from_the_rule_clipped_and_only_for_binaries(tmp_path):
    path = _truth(tmp_path / "truth.csv", [
        ("00001", "PanSTARRS", 1, 1, 2.2, 1.1, 0.5, 20.0),    # twice the FWHM, four times S/N 5
        ("00001", "ps1", 0, 1, 0.55, 1.1, 0.5, 2.5),          # an alias; half the FWHM, half the S/N
        ("00002", "HST", 0, 0, "", 0.08, "", ""),             # a single star: no geometry
        ("00003", "HST", 1, 1, 2.4, 0.08, 0.9, 1e5),          # far beyond both limits: clipped
    ])
    geometry = read_pair_geometry([path])
    assert set(geometry) == {("00001", "PanSTARRS"), ("00003", "HST")}
    # the later row of a (source, survey) wins, as a later label does
    assert geometry[("00001", "PanSTARRS")] == pytest.approx((-1.0, -1.0))
    assert geometry[("00003", "HST")] == pytest.approx((2.0, 3.0))
    t = margin_targets(["00003", "00002"], ["HST", "HST"], geometry)
    assert t.shape == (2, 2) and t[0].tolist() == pytest.approx([2.0, 3.0]) and bool(t[1].isnan().all())


def test_a_table_without_geometry_is_refused_in_one_sentence(tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text("source_id,survey,label\n1,HST,0\n")
    with pytest.raises(BinarycatError, match=r"no is_binary, separation_arcsec.*truth\.csv") as info:
        read_pair_geometry([labels])
    assert "\n" not in str(info.value)
    with pytest.raises(BinarycatError, match="does not exist"):
        read_pair_geometry([tmp_path / "missing.csv"])


def test_the_loss_ignores_unknown_margins():
    predicted = torch.tensor([[0.0, 0.0], [5.0, -5.0]], requires_grad=True)
    target = torch.tensor([[0.5, 0.5], [math.nan, math.nan]])
    loss = margin_loss(predicted, target)
    assert loss.item() == pytest.approx(0.125)  # smooth L1 of 0.5 is 0.5 * 0.5**2
    loss.backward()
    assert predicted.grad[1].abs().sum() == 0 and predicted.grad[0].abs().sum() > 0
    none = margin_loss(predicted, torch.full((2, 2), math.nan))
    assert none.item() == 0.0 and none.requires_grad


def test_the_head_learns_from_the_network_features_and_leaves_its_outputs_alone():
    torch.manual_seed(0)
    model = build("resnet34-stem", input_size=32)
    head = PairMarginHead(model.fc)
    x = torch.randn(8, 1, 32, 32)
    target = torch.stack([x.mean(dim=(1, 2, 3)) * 10, -x.std(dim=(1, 2, 3))], dim=1)
    opt = torch.optim.Adam(list(model.parameters()) + list(head.parameters()), lr=1e-3)
    losses = []
    model.train()
    for _ in range(40):
        opt.zero_grad()
        logits = model(x)
        loss = margin_loss(head.margins(), target)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert logits.shape == (8, 2)
    assert losses[-1] < 0.2 * losses[0], losses
    assert model.conv1[0].weight.grad.abs().sum() > 0  # the regression reaches the stem
    head.detach()
    model.eval()
    with torch.no_grad():
        model(x)
    with pytest.raises(RuntimeError, match="forward pass"):
        head.margins()
    assert not any(k.startswith("linear") for k in model.state_dict())
