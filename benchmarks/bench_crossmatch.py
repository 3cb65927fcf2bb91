"""Cross-match speed: binarycat's DuckDB zones join versus astropy ``search_around_sky``.

Both run end to end from Parquet files of random points in a 6 x 6 degree field (radius 1"):
binarycat streams the files with ``read_parquet`` into the zones join and materialises the
pairs; astropy reads the files with pyarrow, builds two SkyCoords and calls
``search_around_sky``. Every measurement runs in a fresh Python process, so wall time and peak
resident memory (``ru_maxrss``) belong to that measurement alone. Pair counts must agree.
Then the two real eclipsing-binary catalogues in ``../shared/data`` (if present) are matched
with both tools and the pair sets compared.

Run:  python benchmarks/bench_crossmatch.py                       # 27,730x1M, 1Mx1M, 1Mx10M
      python benchmarks/bench_crossmatch.py --sizes 10000000x10000000 --only binarycat
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

FIELD = (83.8 - 3.0, 83.8 + 3.0, -5.4 - 3.0, -5.4 + 3.0)
DEFAULT_SIZES = ["27730x1000000", "1000000x1000000", "1000000x10000000"]
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def make_points(path: Path, n: int, seed: int) -> None:
    """Uniform points on the sphere inside FIELD, written to Parquet in 1M-row chunks."""
    if path.exists():
        return
    rng = np.random.default_rng(seed)
    ra0, ra1, dec0, dec1 = FIELD
    s0, s1 = np.sin(np.radians(dec0)), np.sin(np.radians(dec1))
    writer = None
    for start in range(0, n, 1_000_000):
        m = min(1_000_000, n - start)
        t = pa.table({
            "id": np.arange(start, start + m, dtype=np.int64),
            "ra": rng.uniform(ra0, ra1, m),
            "dec": np.degrees(np.arcsin(rng.uniform(s0, s1, m))),
        })
        writer = writer or pq.ParquetWriter(path, t.schema)
        writer.write_table(t)
    writer.close()


def run_binarycat(a: Path, b: Path, radius: float) -> int:
    import duckdb

    from binarycat.catalog.crossmatch import zones_join_sql

    con = duckdb.connect()
    sql = zones_join_sql(f"read_parquet('{a}')", f"read_parquet('{b}')", radius)
    con.execute(f"CREATE TEMP TABLE pairs AS {sql}")
    return con.execute("SELECT count(*) FROM pairs").fetchall()[0][0]


def run_astropy(a: Path, b: Path, radius: float) -> int:
    from astropy import units as u
    from astropy.coordinates import SkyCoord, search_around_sky

    ta, tb = pq.read_table(a), pq.read_table(b)
    ca = SkyCoord(ta["ra"].to_numpy() * u.deg, ta["dec"].to_numpy() * u.deg)
    cb = SkyCoord(tb["ra"].to_numpy() * u.deg, tb["dec"].to_numpy() * u.deg)
    i, j, sep, _ = search_around_sky(ca, cb, radius * u.arcsec)
    return len(i)


def one(tool: str, a: str, b: str, radius: float) -> None:
    """Child process: one measurement, printed as JSON (imports are done before the clock starts)."""
    if tool == "binarycat":
        import duckdb  # noqa: F401

        import binarycat.catalog.crossmatch  # noqa: F401
    else:
        import astropy.coordinates  # noqa: F401
    t = time.perf_counter()
    n = (run_binarycat if tool == "binarycat" else run_astropy)(Path(a), Path(b), radius)
    wall = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # GiB (ru_maxrss is KiB)
    print(json.dumps({"tool": tool, "pairs": n, "seconds": wall, "peak_gib": peak}))


def measure(tool: str, a: Path, b: Path, radius: float) -> dict:
    out = subprocess.run([sys.executable, __file__, "--one", tool, str(a), str(b), str(radius)],
                         capture_output=True, text=True)
    if out.returncode != 0:
        return {"tool": tool, "error": out.stderr.strip().splitlines()[-1] if out.stderr else "failed"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def real_catalogues(radius: float) -> None:
    new, train = SHARED / "calnet_new_eclipsing_binaries.dat", SHARED / "calnet_training_eclipsing_binaries.dat"
    if not (new.exists() and train.exists()):
        print("shared/data not found: real-catalogue check skipped")
        return
    import duckdb
    from astropy import units as u
    from astropy.coordinates import SkyCoord, search_around_sky
    from astropy.table import Table

    from binarycat.catalog.crossmatch import zones_join

    a = Table.read(new, format="ascii.fixed_width_two_line")
    b = Table.read(train, format="ascii.fixed_width_two_line")
    con = duckdb.connect()
    for name, t in (("a", a), ("b", b)):
        con.register(name, pa.table({"id": np.asarray(t["TIC"]).astype(str),
                                     "ra": np.asarray(t["RAJ2000"], float), "dec": np.asarray(t["DEJ2000"], float)}))
    t0 = time.perf_counter()
    ours = {(r[0], r[1]) for r in zones_join(con, "a", "b", radius).fetchall()}
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    i, j, _, _ = search_around_sky(SkyCoord(a["RAJ2000"], a["DEJ2000"], unit="deg"),
                                   SkyCoord(b["RAJ2000"], b["DEJ2000"], unit="deg"), radius * u.arcsec)
    t_astropy = time.perf_counter() - t0
    theirs = {(str(a["TIC"][x]), str(b["TIC"][y])) for x, y in zip(i, j)}
    same_tic = sum(1 for p, q in ours if p == q)
    print(f"real catalogues: CALNet new EBs ({len(a)}) x CALNet training EBs ({len(b)}) within {radius}\": "
          f"binarycat {len(ours)} pairs, astropy {len(theirs)} pairs, identical sets: {ours == theirs}; "
          f"{same_tic} pairs share their TIC id; {t_ours * 1e3:.0f} ms vs {t_astropy * 1e3:.0f} ms")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="*", default=DEFAULT_SIZES, help="NLEFTxNRIGHT")
    ap.add_argument("--radius", type=float, default=1.0, help="arcsec")
    ap.add_argument("--only", choices=["binarycat", "astropy"], default=None)
    ap.add_argument("--data", type=Path, default=None, help="folder for the Parquet inputs (kept)")
    ap.add_argument("--one", nargs=4, metavar=("TOOL", "A", "B", "RADIUS"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        tool, a, b, r = args.one
        one(tool, a, b, float(r))
        return
    tmp = tempfile.TemporaryDirectory() if args.data is None else None
    data = Path(tmp.name) if tmp else args.data
    data.mkdir(parents=True, exist_ok=True)
    print(f"command: {' '.join(sys.argv)}")
    print(f"random points in a 6x6 deg field, radius {args.radius}\", each run in a fresh process")
    print(f"{'left x right':>22} {'tool':>10} {'pairs':>9} {'seconds':>8} {'peak GiB':>9} {'astropy/binarycat':>18}")
    for size in args.sizes:
        n1, n2 = (int(x) for x in size.lower().split("x"))
        a, b = data / f"left_{n1}.parquet", data / f"right_{n2}.parquet"
        make_points(a, n1, seed=1)
        make_points(b, n2, seed=2)
        tools = [args.only] if args.only else ["binarycat", "astropy"]
        res = {t: measure(t, a, b, args.radius) for t in tools}
        for t in tools:
            r = res[t]
            if "error" in r:
                print(f"{size:>22} {t:>10} failed: {r['error']}")
                continue
            ratio = ""
            if t == "astropy" and "error" not in res.get("binarycat", {"error": 1}):
                ratio = f"{r['seconds'] / res['binarycat']['seconds']:.2f}x"
                if r["pairs"] != res["binarycat"]["pairs"]:
                    ratio += f" (PAIR COUNTS DIFFER: {res['binarycat']['pairs']})"
            print(f"{size:>22} {t:>10} {r['pairs']:>9} {r['seconds']:>8.2f} {r['peak_gib']:>9.2f} {ratio:>18}")
    real_catalogues(2.0)


if __name__ == "__main__":
    main()
