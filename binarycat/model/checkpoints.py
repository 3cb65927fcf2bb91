"""Saving and loading model checkpoints with the configuration needed to use them."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from binarycat.errors import BinarycatError
from binarycat.model.networks import ARCHITECTURES, build

__all__ = ["save_checkpoint", "load_checkpoint", "load_catalog_checkpoint"]

#: The schema version of checkpoints that do not record one (written before it was recorded).
LEGACY_SCHEMA_VERSION = 3


def save_checkpoint(path: Path, model: torch.nn.Module, config: dict) -> None:
    """Write ``{"config", "state_dict"}`` atomically (temporary name, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"config": dict(config), "state_dict": state}, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, device: torch.device | str = "cpu", *,
                    schema_version: int | None = None) -> tuple[torch.nn.Module, dict]:
    """Rebuild the network a checkpoint describes and load its weights.

    Parameters
    ----------
    path : Path
        The ``.pt`` file written by `save_checkpoint`.
    device : torch.device or str
    schema_version : int, optional
        The schema version of the catalogue the checkpoint is used with. A checkpoint records
        the version of the catalogue it was trained in (checkpoints written before that key
        existed count as version 3); a different version is refused, because the stamps,
        labels and preprocessing it was trained on may not mean the same there.

    Raises
    ------
    BinarycatError
        Missing or unreadable file, another schema version, an unknown architecture, or
        weights that do not fit the architecture.
    """
    path = Path(path)
    if not path.exists():
        raise BinarycatError(f"Checkpoint {path} is missing.")
    try:
        blob = torch.load(path, map_location=device, weights_only=True)
        config = dict(blob["config"])
        state = blob["state_dict"]
    except Exception as exc:
        raise BinarycatError(f"Checkpoint {path} cannot be read: {str(exc).splitlines()[0]}") from None
    written_by = int(config.get("schema_version", LEGACY_SCHEMA_VERSION))
    if schema_version is not None and written_by != schema_version:
        raise BinarycatError(
            f"Checkpoint {path.name} was trained in a catalogue of schema version {written_by}, "
            f"but this catalogue is version {schema_version}; retrain it here with `binarycat train`."
        )
    arch = config.get("arch")
    if arch not in ARCHITECTURES:
        raise BinarycatError(f"Checkpoint {path.name} holds an unknown architecture {arch!r}; "
                             f"known: {', '.join(ARCHITECTURES)}.")
    model = build(arch, **config.get("arch_kwargs", {"in_channels": 1, "num_classes": 2}))
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise BinarycatError(f"Checkpoint {path.name}: its weights do not fit a {arch} network "
                             f"({str(exc).splitlines()[0]})") from None
    return model.to(device).eval(), config


def load_catalog_checkpoint(catalog, checkpoint: str, device: torch.device | str = "cpu"):
    """`load_checkpoint` of a ``models.checkpoint`` path, checked against ``catalog``'s schema version."""
    return load_checkpoint(catalog.resolve(checkpoint), device, schema_version=catalog.schema_version)
