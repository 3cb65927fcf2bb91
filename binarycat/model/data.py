"""Stamps and labels from the catalogue as torch datasets, and the train/validation/test split."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np
import torch
from torch.utils.data import Dataset

from binarycat.catalog.arrays import load_stamp_arrays
from binarycat.catalog.store import Catalog
from binarycat.errors import BinarycatError
from binarycat.model.networks import survey_indices
from binarycat.model.preprocess import NORMALISATION, stamps_to_tensor

__all__ = ["LabelledStamps", "StampDataset", "labelled_stamps", "split_sources", "augment_batch"]

SPLIT_FRACTIONS = (0.70, 0.15, 0.15)


@dataclass
class LabelledStamps:
    """Stamp ids with their source, survey and label (latest label per source and survey)."""

    stamp_id: list[str]
    source_id: list[str]
    survey: list[str]
    label: np.ndarray
    pixel_scale: list[float | None]

    def __len__(self) -> int:
        return len(self.stamp_id)

    def subset(self, mask) -> "LabelledStamps":
        idx = np.flatnonzero(mask)
        return LabelledStamps([self.stamp_id[i] for i in idx], [self.source_id[i] for i in idx],
                              [self.survey[i] for i in idx], self.label[idx],
                              [self.pixel_scale[i] for i in idx])


def labelled_stamps(catalog: Catalog, surveys: list[str], *, where: str | None = None) -> LabelledStamps:
    """Every stored stamp of ``surveys`` whose (source, survey) has a label.

    ``where`` is an SQL condition on ``sources`` (alias ``s``), e.g. ``"s.dec > -6"``.
    """
    cond = f"and ({where})" if where else ""
    try:
        rows = catalog.sql(
            f"""select st.stamp_id, st.source_id, st.survey, l.label, st.pixel_scale_arcsec
               from stamps st join latest_labels l using (source_id, survey)
               join sources s on s.source_id = st.source_id
               where st.survey in (select unnest($surveys)) {cond}
               order by st.source_id, st.survey, st.stamp_id""",
            {"surveys": surveys},
        ).fetchall()
    except duckdb.Error as exc:
        raise BinarycatError(f"--where is not a valid condition on sources: {' '.join(str(exc).split())}") from None
    if not rows:
        raise BinarycatError(
            f"No labelled stamps for {', '.join(surveys)}"
            + (f" where {where}" if where else "") + "; ingest stamps and import labels first."
        )
    sid, src, sv, lab, scale = zip(*rows)
    return LabelledStamps(list(sid), list(src), list(sv), np.asarray(lab, dtype=np.int64), list(scale))


def split_sources(source_ids, labels, seed: int, fractions=SPLIT_FRACTIONS) -> dict[str, str]:
    """Stratified split of sources into train/validation/test; one source is in one split only.

    A source's stratum is its highest label (binary in any survey or not); within a stratum
    sources are shuffled with ``seed`` and cut at the fractions.
    """
    stratum: dict[str, int] = {}
    for s, y in zip(source_ids, labels):
        stratum[s] = max(stratum.get(s, 0), int(y))
    rng = np.random.default_rng(seed)
    out: dict[str, str] = {}
    for value in sorted(set(stratum.values())):
        members = sorted(s for s, v in stratum.items() if v == value)
        rng.shuffle(members)
        n = len(members)
        n_train = int(round(fractions[0] * n))
        n_val = int(round(fractions[1] * n))
        for i, s in enumerate(members):
            out[s] = "train" if i < n_train else "validation" if i < n_train + n_val else "test"
    return out


class StampDataset(Dataset):
    """Stamps read from the catalogue's Parquet store, preprocessed to model inputs.

    Each shard is read once at construction; items are ``(tensor (1, S, S), label, survey)``,
    ``survey`` being the index of the stamp's survey in ``surveys`` (default: the sorted
    surveys of ``stamps``), for a survey-conditioned network.
    With ``augment=True`` items get a random flip, 90-degree rotation and a shift of up to
    one pixel: symmetries of the sky that do not resample (and so do not smear) the PSF.
    """

    def __init__(self, catalog: Catalog, stamps: LabelledStamps, input_size: int, *,
                 input_scale_arcsec: float | None = None, augment: bool = False, seed: int = 0,
                 noise_fraction: float = 0.0, surveys: list[str] | None = None,
                 normalisation: str = NORMALISATION):
        arrays = load_stamp_arrays(catalog, stamps.stamp_id)
        self.x = stamps_to_tensor(arrays, input_size, stamps.pixel_scale, input_scale_arcsec,
                                  normalisation=normalisation)
        self.y = torch.as_tensor(stamps.label, dtype=torch.long)
        self.survey = survey_indices(surveys or sorted(set(stamps.survey)), stamps.survey)
        self.augment = augment
        self.noise_fraction = noise_fraction
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i):
        x = self.x[i]
        if self.augment:
            x = augment_batch(x[None], self.generator, self.noise_fraction)[0]
        return x, self.y[i], self.survey[i]


def augment_batch(x: torch.Tensor, generator: torch.Generator, noise_fraction: float = 0.0) -> torch.Tensor:
    """Random flips, 90-degree rotations and +-1 px shifts of an (N, C, H, W) batch.

    With ``noise_fraction > 0`` each stamp also gets a fresh Gaussian noise realisation of
    ``u * sigma`` with ``u`` uniform in [0, noise_fraction] and ``sigma`` the stamp's own noise
    (1.4826 x MAD over its pixels, which are mostly sky): the same star as a slightly shallower
    exposure would show it. It is kept small so a companion near the S/N limit of the label
    rule does not change class.
    """
    out = torch.empty_like(x)
    n = x.shape[0]
    flips = torch.randint(0, 2, (n,), generator=generator)
    turns = torch.randint(0, 4, (n,), generator=generator)
    shifts = torch.randint(-1, 2, (n, 2), generator=generator)
    for i in range(n):
        xi = x[i].flip(-1) if flips[i] else x[i]
        xi = torch.rot90(xi, int(turns[i]), dims=(-2, -1))
        out[i] = torch.roll(xi, shifts=(int(shifts[i, 0]), int(shifts[i, 1])), dims=(-2, -1))
    if noise_fraction > 0:
        flat = out.flatten(1)
        sigma = 1.4826 * (flat - flat.median(dim=1, keepdim=True).values).abs().median(dim=1).values
        amp = torch.rand(n, generator=generator) * noise_fraction * sigma
        out = out + torch.randn(out.shape, generator=generator) * amp.view(n, *([1] * (out.dim() - 1)))
    return out
