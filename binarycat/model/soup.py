"""Averaging the weights of several trained stamp classifiers into one ("model soup").

Models fine-tuned from one another, or from one common model, lie in one basin of the loss,
and the uniform average of their weights usually scores at least as well as the best of them
while predicting at the cost of one network (Wortsman et al. 2022, "Model soups"). It is the
same averaging `torch.optim.swa_utils.AveragedModel` does across the epochs of one run
(``TrainConfig.average_from``), taken across runs; `binarycat.model.train` recomputes the
average's BatchNorm statistics before using it, since the members' statistics do not fit it.

Examples
--------
>>> import torch
>>> a = {"w": torch.tensor([0.0, 2.0]), "n": torch.tensor(5)}
>>> b = {"w": torch.tensor([2.0, 4.0]), "n": torch.tensor(7)}
>>> average_weights([a, b])["w"].tolist()
[1.0, 3.0]
>>> average_weights([a, b])["n"].item()    # counters are not weights: the first member's
5
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from binarycat.errors import BinarycatError

__all__ = ["average_weights"]


def average_weights(states: Sequence[dict], names: Sequence[str] | None = None) -> dict:
    """The uniform average of state dicts of one network.

    Parameters
    ----------
    states : sequence of dict
        ``model.state_dict()`` of each member; all with the same keys and shapes.
    names : sequence of str, optional
        The members' names, for the error message.

    Returns
    -------
    dict
        Floating-point tensors averaged; integer ones (BatchNorm's ``num_batches_tracked``)
        taken from the first member.
    """
    if not states:
        raise BinarycatError("No models to average.")
    names = list(names) if names is not None else [f"model {i + 1}" for i in range(len(states))]
    first = states[0]
    for name, state in zip(names[1:], states[1:]):
        shapes = {k: tuple(v.shape) for k, v in state.items()}
        if shapes != {k: tuple(v.shape) for k, v in first.items()}:
            raise BinarycatError(f"{name} is not the same network as {names[0]}, so their weights "
                                 "cannot be averaged.")
    return {k: torch.stack([s[k].float() for s in states]).mean(0).to(v.dtype) if v.is_floating_point()
            else v.clone() for k, v in first.items()}
