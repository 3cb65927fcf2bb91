"""Moving a trained model from one catalogue to another as one file.

A model lives in its catalogue as a row of ``models``, its split of sources (``splits``, or
``eb_splits`` for CALNet) and a checkpoint under ``models/``. `export_model` writes all three to
one zip archive and `import_model` puts them into another catalogue, so a model trained on a
GPU machine can predict and be evaluated on a laptop, and a colleague can score their own sky
with it.

The archive holds::

    model.json      the models row (model_id, kind, surveys, params, split_seed, metrics,
                    created_at), the catalogue schema version it was trained in, the size and
                    SHA-256 of the checkpoint, and the binarycat version that wrote it
    splits.parquet  which sources (or TIC ids) the model trained, validated and was tested on,
                    with each source's ICRS position when the exporting catalogue has it
    checkpoint.pt   the weights and configuration, exactly as in ``models/``

The split travels with the model because it is what keeps an evaluation honest:
``evaluate --on unseen`` scores only sources in none of the model's splits, and
``train --init-from`` keeps them where they were. Source ids name the same star only within
one source list, so the import compares positions: a split source whose id the catalogue holds
at a position more than `ID_MATCH_ARCSEC` away makes the import fail, since the split would
then mark another star as seen.

Examples
--------
>>> export_model(Catalog("gpu-catalog"), "resnet34-stem-d52263a176", "d52.zip")  # doctest: +SKIP
>>> import_model(Catalog("binarycat-catalog"), "d52.zip").status                   # doctest: +SKIP
'imported'
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from binarycat.catalog.store import Catalog
from binarycat.errors import BinarycatError
from binarycat.model.checkpoints import load_checkpoint
from binarycat.model.eb_train import EB_MODEL_KIND
from binarycat.model.train import MODEL_KIND

__all__ = ["ARCHIVE_FORMAT", "ID_MATCH_ARCSEC", "ModelTransfer", "export_model", "import_model", "read_manifest"]

#: ``model.json["format"]``; the number after the slash changes when the layout does.
ARCHIVE_FORMAT = "binarycat-model-archive/1"

#: A split source and the catalogue's source of the same id are one star if this close (arcsec).
ID_MATCH_ARCSEC = 1.0

#: Where each kind of model keeps its split, and the key column there.
_SPLIT_TABLES = {MODEL_KIND: ("splits", "source_id", pa.string()),
                 EB_MODEL_KIND: ("eb_splits", "tic_id", pa.int64())}
_MEMBERS = ("model.json", "splits.parquet", "checkpoint.pt")
_ROW_KEYS = ("model_id", "kind", "surveys", "params", "split_seed", "metrics")


@dataclass(frozen=True)
class ModelTransfer:
    """What `export_model` or `import_model` did.

    Attributes
    ----------
    model_id, kind : str
    path : Path
        The archive written or read.
    n_split : int
        Sources (or TIC ids) in the model's split.
    status : str
        ``"exported"``, ``"imported"``, or ``"unchanged"`` when the catalogue already held
        exactly this model.
    """

    model_id: str
    kind: str
    path: Path
    n_split: int
    status: str

    def as_dict(self) -> dict:
        return {"model_id": self.model_id, "kind": self.kind, "path": str(self.path),
                "n_split": self.n_split, "status": self.status}


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _binarycat_version() -> str:
    try:
        return version("binarycat")
    except PackageNotFoundError:
        return "unknown"


def _split_table(kind: str) -> tuple[str, str, pa.DataType]:
    try:
        return _SPLIT_TABLES[kind]
    except KeyError:
        raise BinarycatError(f"Models of kind {kind!r} cannot be moved; known kinds: "
                             f"{', '.join(_SPLIT_TABLES)}.") from None


def export_model(catalog: Catalog, model_id: str, path: str | os.PathLike, *, overwrite: bool = False) -> ModelTransfer:
    """Write ``model_id`` of ``catalog`` (row, split and checkpoint) to the zip archive ``path``.

    Parameters
    ----------
    catalog : Catalog
    model_id : str
    path : path-like
        The archive to write; written under a temporary name and renamed, so an interrupted
        export leaves no half file.
    overwrite : bool
        Replace ``path`` if it exists (otherwise that is refused).

    Raises
    ------
    BinarycatError
        An unknown model, a missing checkpoint file, or an existing ``path``.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise BinarycatError(f"{path} already exists; pass --force to replace it.")
    cur = catalog.sql("select model_id, kind, surveys, params, split_seed, metrics, checkpoint, created_at "
                      "from models where model_id = ?", [model_id])
    found = cur.fetchall()
    if not found:
        raise BinarycatError(f"No model {model_id!r} in the catalogue; `binarycat models list` shows them.")
    row = dict(zip([d[0] for d in cur.description], found[0]))
    table, key, _ = _split_table(row["kind"])
    checkpoint = catalog.resolve(row["checkpoint"])
    if not checkpoint.is_file():
        raise BinarycatError(f"The checkpoint of {model_id}, {checkpoint}, is missing.")
    weights = checkpoint.read_bytes()
    # stamp models also carry each source's position, which `import_model` checks ids against
    positions = ", s.ra, s.dec" if key == "source_id" else ""
    join = "left join sources s using (source_id)" if key == "source_id" else ""
    splits = catalog.con.sql(f"select p.{key}, p.split{positions} from {table} p {join} "
                             f"where p.model_id = ? order by p.{key}", params=[model_id]).to_arrow_table()
    buffer = io.BytesIO()
    pq.write_table(splits, buffer)
    manifest = {
        "format": ARCHIVE_FORMAT,
        **{k: row[k] for k in ("model_id", "kind", "split_seed")},
        "surveys": list(row["surveys"] or []),
        "params": json.loads(row["params"]) if row["params"] else None,
        "metrics": json.loads(row["metrics"]) if row["metrics"] else None,
        "created_at": row["created_at"].isoformat() if row["created_at"] else None,
        "schema_version": catalog.schema_version,
        "checkpoint_sha256": _sha256(weights),
        "checkpoint_bytes": len(weights),
        "n_split": splits.num_rows,
        "written_by": f"binarycat {_binarycat_version()}",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}")
    try:
        with zipfile.ZipFile(tmp, "w") as zf:
            zf.writestr("model.json", json.dumps(manifest, indent=1), compress_type=zipfile.ZIP_DEFLATED)
            zf.writestr("splits.parquet", buffer.getvalue())
            zf.writestr("checkpoint.pt", weights)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return ModelTransfer(model_id, row["kind"], path, splits.num_rows, "exported")


def _open_archive(path: Path) -> zipfile.ZipFile:
    if not path.is_file():
        raise BinarycatError(f"Model archive {path} is missing.")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        raise BinarycatError(f"{path} is not a binarycat model archive (not a readable zip file).") from None
    missing = [m for m in _MEMBERS if m not in zf.namelist()]
    if missing:
        zf.close()
        raise BinarycatError(f"{path} is not a binarycat model archive: it has no {', '.join(missing)}.")
    return zf


def _manifest(zf: zipfile.ZipFile, path: Path) -> dict:
    try:
        manifest = json.loads(zf.read("model.json"))
    except (ValueError, zipfile.BadZipFile, OSError) as exc:
        raise BinarycatError(f"The model.json of {path} cannot be read: {str(exc).splitlines()[0]}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != ARCHIVE_FORMAT:
        got = manifest.get("format") if isinstance(manifest, dict) else None
        raise BinarycatError(f"{path} is a model archive of format {got!r}; this binarycat reads {ARCHIVE_FORMAT}.")
    missing = [k for k in (*_ROW_KEYS, "schema_version", "checkpoint_sha256") if k not in manifest]
    if missing:
        raise BinarycatError(f"The model.json of {path} lacks {', '.join(missing)}.")
    return manifest


def read_manifest(path: str | os.PathLike) -> dict:
    """The ``model.json`` of a model archive, checked to be one."""
    path = Path(path)
    with _open_archive(path) as zf:
        return _manifest(zf, path)


def _check_ids_name_the_same_stars(catalog: Catalog, ids: list, ra: list, dec: list, model_id: str) -> None:
    """Refuse a split whose source ids the catalogue holds at other positions."""
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    known = [(i, r, d) for i, r, d in zip(ids, ra, dec) if r is not None and d is not None]
    if not known:
        return
    there = catalog.sql("select k.source_id, s.ra, s.dec from (select unnest(?::VARCHAR[]) as source_id) k "
                        "join sources s using (source_id)", [[k[0] for k in known]]).fetchall()
    if not there:
        return
    theirs = {i: (r, d) for i, r, d in there}
    pairs = [(i, r, d, *theirs[i]) for i, r, d in known if i in theirs]
    ours = SkyCoord([p[1] for p in pairs] * u.deg, [p[2] for p in pairs] * u.deg)
    here = SkyCoord([p[3] for p in pairs] * u.deg, [p[4] for p in pairs] * u.deg)
    sep = ours.separation(here).arcsec
    clash = [(p[0], s) for p, s in zip(pairs, sep) if s > ID_MATCH_ARCSEC]
    if clash:
        first, far = clash[0]
        raise BinarycatError(
            f"{len(clash)} of the {len(pairs)} sources in {model_id}'s split that this catalogue also holds "
            f"are other stars here (e.g. {first} lies {far:.1f}\" from where the model saw it), so its split "
            "would mark unseen stars as seen; import it into a catalogue whose source ids match.")


def import_model(catalog: Catalog, path: str | os.PathLike) -> ModelTransfer:
    """Add the model in archive ``path`` to ``catalog``: its row, its split and its checkpoint.

    Everything is checked before anything is written: the archive's layout, the checkpoint's
    SHA-256, that the catalogue has the schema version the model was trained in, that split
    sources the catalogue also holds sit where the model saw them, and that the weights load
    into the architecture they name. Importing the same archive again changes
    nothing (status ``"unchanged"``); a different model under an id the catalogue already
    holds is refused.

    Raises
    ------
    BinarycatError
        With one sentence naming what is wrong; the catalogue is then left as it was.
    """
    path = Path(path)
    with _open_archive(path) as zf:
        manifest = _manifest(zf, path)
        try:
            weights = zf.read("checkpoint.pt")
            split_bytes = zf.read("splits.parquet")
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise BinarycatError(f"{path} is damaged: {str(exc).splitlines()[0]}") from None
    model_id, kind = str(manifest["model_id"]), str(manifest["kind"])
    table, key, key_type = _split_table(kind)
    if _sha256(weights) != manifest["checkpoint_sha256"]:
        raise BinarycatError(f"The checkpoint in {path} does not match its recorded SHA-256; the file is damaged.")
    if int(manifest["schema_version"]) != catalog.schema_version:
        raise BinarycatError(
            f"Model {model_id} was trained in a catalogue of schema version {manifest['schema_version']}, "
            f"but this catalogue is version {catalog.schema_version}; retrain it here with `binarycat train`.")
    try:
        splits = pq.read_table(io.BytesIO(split_bytes))
        keys = splits.column(key).cast(key_type).to_pylist()
        names = splits.column("split").to_pylist()
    except Exception as exc:
        raise BinarycatError(f"The splits.parquet of {path} cannot be read: {str(exc).splitlines()[0]}") from None
    if not set(names) <= {"train", "validation", "test"}:
        raise BinarycatError(f"The splits.parquet of {path} holds splits other than train, validation and test.")

    if "ra" in splits.column_names and "dec" in splits.column_names:
        _check_ids_name_the_same_stars(catalog, keys, splits.column("ra").to_pylist(),
                                       splits.column("dec").to_pylist(), model_id)

    relative = f"models/{model_id}.pt"
    target = catalog.resolve(relative)
    stored = catalog.sql("select checkpoint from models where model_id = ?", [model_id]).fetchone()
    if stored is not None:
        existing = catalog.resolve(stored[0])
        if existing.is_file() and _sha256(existing.read_bytes()) == manifest["checkpoint_sha256"]:
            return ModelTransfer(model_id, kind, path, len(keys), "unchanged")
        raise BinarycatError(f"This catalogue already holds a different model with the id {model_id}; "
                             "nothing was imported.")

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".tmp-import-{target.name}")
    tmp.write_bytes(weights)
    try:
        load_checkpoint(tmp, "cpu", schema_version=catalog.schema_version)
        created = manifest.get("created_at")
        with catalog.transaction() as con:
            con.execute(
                "insert into models (model_id, kind, surveys, params, split_seed, metrics, checkpoint, created_at) "
                "values (?, ?, ?, ?, ?, ?, ?, coalesce(?, current_timestamp))",
                [model_id, kind, list(manifest["surveys"] or []), json.dumps(manifest["params"]),
                 manifest["split_seed"], json.dumps(manifest["metrics"]), relative,
                 datetime.fromisoformat(created) if created else None])
            con.execute(f"delete from {table} where model_id = ?", [model_id])
            con.register("archive_splits", pa.table({key: pa.array(keys, key_type), "split": names}))
            con.execute(f"insert into {table} (model_id, {key}, split) "
                        f"select ?, {key}, split from archive_splits", [model_id])
            con.unregister("archive_splits")
            os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return ModelTransfer(model_id, kind, path, len(keys), "imported")
