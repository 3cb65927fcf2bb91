"""The survey-conditioned stamp network: it starts as the network it wraps and can tell surveys apart."""

import pytest
import torch

from binarycat.errors import BinarycatError
from binarycat.model.networks import (
    SurveyFiLMResNet, build, conditioning_surveys, stamp_logits, stamp_resnet34_stem, survey_indices,
)

SURVEYS = ["PanSTARRS", "SDSS9", "HST"]


def test_an_untrained_modulation_is_exactly_the_wrapped_network():
    torch.manual_seed(0)
    plain = stamp_resnet34_stem(input_size=32).eval()
    film = build("resnet34-stem-film", input_size=32, surveys=SURVEYS).eval()
    film.net.load_state_dict(plain.state_dict())
    x = torch.randn(6, 1, 32, 32)
    with torch.no_grad():
        out = stamp_logits(film, x, torch.tensor([0, 1, 2, 2, 1, 0]))
        assert torch.equal(out, plain(x))
        assert torch.equal(stamp_logits(plain, x), plain(x))
    assert conditioning_surveys(film) == SURVEYS and conditioning_surveys(plain) is None


def test_it_learns_labels_that_only_the_survey_decides():
    """The same images labelled binary in one survey and single in another: only the survey tells them apart."""
    torch.manual_seed(1)
    net = SurveyFiLMResNet(stamp_resnet34_stem(input_size=16), ["A", "B"])
    images = torch.randn(8, 1, 16, 16)
    x = torch.cat([images, images])
    survey = torch.tensor([0] * 8 + [1] * 8)
    y = survey.clone()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(25):  # 20 steps suffice for seeds 1, 2 and 3
        opt.zero_grad()
        torch.nn.functional.cross_entropy(stamp_logits(net, x, survey), y).backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        pred = stamp_logits(net, x, survey).argmax(1)
    assert torch.equal(pred, y)       # an unconditioned network scores 50% here at best
    assert all(emb.weight.abs().max() > 0 for emb in net.film)


def test_a_survey_it_was_not_trained_on_is_refused_in_one_sentence():
    assert survey_indices(None, ["X"]) is None
    assert survey_indices(SURVEYS, ["HST", "PanSTARRS"]).tolist() == [2, 0]
    with pytest.raises(BinarycatError, match="conditioned on PanSTARRS, SDSS9, HST .* 2MASS"):
        survey_indices(SURVEYS, ["HST", "2MASS"])
    film = build("resnet34-stem-film", input_size=16, surveys=SURVEYS)
    with pytest.raises(ValueError, match="survey index"):
        stamp_logits(film, torch.zeros(1, 1, 16, 16))
    with pytest.raises(ValueError, match="at least one survey"):
        SurveyFiLMResNet(stamp_resnet34_stem(input_size=16), [])
