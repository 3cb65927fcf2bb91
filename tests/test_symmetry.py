"""Test-time averaging over the eight flips and 90-degree rotations of a stamp."""

import pytest
import torch

from binarycat.model.networks import build
from binarycat.model.symmetry import dihedral_views, view_averaged_logits, views_of


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return build("resnet34-stem", in_channels=1, num_classes=2, input_size=32).eval()


def test_the_eight_views_are_distinct_symmetries_of_an_asymmetric_stamp():
    x = torch.randn(1, 1, 6, 6)
    views = list(dihedral_views(x))
    assert len(views) == 8 and torch.equal(views[0], x)
    assert len({tuple(v.flatten().tolist()) for v in views}) == 8


def test_eight_view_logits_do_not_depend_on_the_stamps_orientation(net):
    x = torch.randn(3, 1, 32, 32)
    with torch.inference_mode():
        ref = view_averaged_logits(net, x, 8)
        single = [net(v.contiguous()) for v in dihedral_views(x)]
        for view in dihedral_views(x):
            assert torch.allclose(view_averaged_logits(net, view, 8), ref, atol=1e-5)
    # the network alone answers the eight views differently; averaging is what removes that
    assert max(float((s - single[0]).abs().max()) for s in single) > 1e-3
    assert torch.allclose(ref, torch.stack(single).mean(0), atol=1e-6)


def test_one_view_is_the_plain_forward_and_other_counts_are_refused(net):
    x = torch.randn(2, 1, 32, 32)
    with torch.inference_mode():
        assert torch.equal(view_averaged_logits(net, x, 1), net(x))
    with pytest.raises(ValueError, match="1 or 8"):
        view_averaged_logits(net, x, 4)
    assert views_of({}) == 1 and views_of({"views": 8}) == 8
    with pytest.raises(ValueError, match="1 or 8"):
        views_of({"views": 3})
