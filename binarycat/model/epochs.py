"""One training epoch, shared by the stamp classifier and CALNet."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

__all__ = ["train_epoch"]


def train_epoch(model: torch.nn.Module, batches: Iterable, optimizer: torch.optim.Optimizer,
                batch_loss: Callable[[object], tuple[torch.Tensor, int]]) -> float:
    """One pass over ``batches`` in training mode; return the mean loss per item.

    Parameters
    ----------
    model : torch.nn.Module
        Put in training mode first.
    batches : iterable
        E.g. a `torch.utils.data.DataLoader`.
    optimizer : torch.optim.Optimizer
        Stepped once per batch.
    batch_loss : callable
        ``batch_loss(batch) -> (loss, n_items)``: moves the batch to the device and computes its
        mean loss (under autocast where wanted).
    """
    model.train()
    total, n = 0.0, 0
    for batch in batches:
        optimizer.zero_grad(set_to_none=True)
        loss, items = batch_loss(batch)
        loss.backward()
        optimizer.step()
        total += float(loss.detach()) * items
        n += items
    return total / max(n, 1)
