"""Saving and loading model checkpoints with the configuration needed to use them."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from binarycat.errors import BinarycatError
from binarycat.model.networks import build

__all__ = ["save_checkpoint", "load_checkpoint"]


def save_checkpoint(path: Path, model: torch.nn.Module, config: dict) -> None:
    """Write ``{"config", "state_dict"}`` atomically (temporary name, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"config": dict(config), "state_dict": state}, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> tuple[torch.nn.Module, dict]:
    """Rebuild the network a checkpoint describes and load its weights."""
    path = Path(path)
    if not path.exists():
        raise BinarycatError(f"Checkpoint {path} is missing.")
    try:
        blob = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:
        raise BinarycatError(f"Checkpoint {path} cannot be read: {str(exc).splitlines()[0]}") from None
    config = blob["config"]
    model = build(config["arch"], **config.get("arch_kwargs", {"in_channels": 1, "num_classes": 2}))
    model.load_state_dict(blob["state_dict"])
    return model.to(device).eval(), config
