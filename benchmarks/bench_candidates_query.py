"""How fast the named queries `candidates`, `consensus` and `resolution_conflicts` answer.

Builds a temporary catalogue with N predictions (N / 4 sources x 4 surveys, one stamp and
one prediction per source and survey; p_binary skewed towards 0 so about a fifth of the
predictions are flagged), generated inside DuckDB from ``range()`` with ``hash()`` as the
random numbers, so that every run builds the same catalogue (``random()`` under ``setseed``
is not repeatable once DuckDB runs the insert on several threads). Then times each query end to end through `run_query` (open the catalogue
read-only, run, return an Arrow table): one warm-up call, then the best of ``--repeat``.
The reference, measured in the same run on the same catalogue and the same way, is
``select count(*) from binary_flags``: the cost of computing the latest prediction per
(source, survey) once, which every one of these queries has to pay.

The issue's target: `candidates` over 1,000,000 predictions in under 100 ms.

Run:  python benchmarks/bench_candidates_query.py [--predictions 1000000] [--surveys 4]
      [--repeat 3] [--explain] [--sql LABEL=FILE ...]

``--sql`` times another SQL text the same way, e.g. an earlier version of a query, to compare
before and after in one run.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from binarycat.catalog.flags import rebuild_binary_flags
from binarycat.catalog.store import Catalog
from binarycat.ingest.surveys import sync_survey_table
from binarycat.queries.runner import get_query, run_query

# Four surveys with different PSFs, so that `resolution_conflicts` has pairs to find.
SURVEYS = ["PanSTARRS", "SDSS9", "2MASS", "unWISE", "DECaLS", "ZTF", "HSC", "SkyMapper"]
REFERENCE = "select count(*) as n from binary_flags"
QUERIES = ["candidates", "consensus", "resolution_conflicts"]


def build_catalog(path: Path, n_predictions: int, n_surveys: int, flag_rate: float = 0.206) -> dict:
    """A catalogue with n_predictions // n_surveys sources, each with one stamp and one prediction per survey.

    ``p_binary = u ** k`` with ``u`` uniform and ``k`` chosen so that a fraction ``flag_rate``
    of the predictions has ``p_binary >= 0.5``.
    """
    import math

    exponent = math.log(0.5) / math.log(1.0 - flag_rate)
    n_sources = n_predictions // n_surveys
    surveys = SURVEYS[:n_surveys]
    t0 = time.perf_counter()
    with Catalog(path) as cat:
        sync_survey_table(cat)
        with cat.transaction() as con:
            # uniform(x) in [0, 1): a repeatable stand-in for random()
            con.execute("create temporary macro uniform(x) as (hash(x) % 1000003) / 1000003.0")
            con.execute(
                "insert into sources (source_id, ra, dec, healpix) "
                "select 'S' || lpad(i::VARCHAR, 7, '0'), uniform('ra' || i) * 360, uniform('dec' || i) * 180 - 90, i "
                "from range(?) r(i)",
                [n_sources],
            )
            con.execute(
                """insert into stamps (stamp_id, source_id, survey, content_hash, shard, shard_row, height, width)
                   select 'T' || lpad(i::VARCHAR, 7, '0') || '-' || j, 'S' || lpad(i::VARCHAR, 7, '0'),
                          s.name, md5(i::VARCHAR || '-' || j), 'stamps/shard-' || (i // 10000) || '.parquet',
                          (i % 10000)::INTEGER, 64, 64
                   from range(?) r(i), (select unnest(?::VARCHAR[]) as name, generate_subscripts(?::VARCHAR[], 1) as j) s""",
                [n_sources, surveys, surveys],
            )
            con.execute(
                """insert into predictions (stamp_id, model_id, source_id, survey, p_binary, flag, threshold)
                   select stamp_id, 'bench-model', source_id, survey, p, p >= 0.5, 0.5
                   from (select stamp_id, source_id, survey, pow(uniform(stamp_id), ?) as p from stamps)""",
                [exponent],
            )
        rebuild_binary_flags(cat)
        counts = {t: cat.table_count(t) for t in ("sources", "stamps", "predictions")}
        counts["flagged"] = cat.sql("select count(*) from predictions where flag").fetchone()[0]
    counts["build_s"] = time.perf_counter() - t0
    return counts


def time_query(catalog_dir: Path, name_or_sql: str, repeat: int) -> tuple[float, int]:
    """Best wall time of `repeat` calls after one warm-up, in milliseconds, and the row count."""
    result = run_query(catalog_dir, name_or_sql)
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        result = run_query(catalog_dir, name_or_sql)
        best = min(best, time.perf_counter() - t)
    return best * 1e3, result.num_rows


def explain(catalog_dir: Path, name: str) -> str:
    """EXPLAIN ANALYZE of a named query, with parameters at their defaults (all NULL)."""
    sql = get_query(name).sql
    con = duckdb.connect(str(catalog_dir / "catalog.duckdb"), read_only=True)
    try:
        con.execute("pragma enable_profiling = 'no_output'")
        rows = con.sql("explain analyze " + sql).fetchall()
        return "\n".join(r[1] for r in rows)
    finally:
        con.close()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--predictions", type=int, default=1_000_000)
    ap.add_argument("--surveys", type=int, default=4, choices=range(2, len(SURVEYS) + 1))
    ap.add_argument("--repeat", type=int, default=3, help="best of N timings after a warm-up")
    ap.add_argument("--flag-rate", type=float, default=0.206,
                    help="fraction of predictions flagged binary (default 0.206, i.e. p = u**3)")
    ap.add_argument("--explain", action="store_true", help="print EXPLAIN ANALYZE of each query")
    ap.add_argument("--target-ms", type=float, default=100.0, help="the candidates query's target")
    ap.add_argument("--sql", action="append", default=[], metavar="LABEL=FILE",
                    help="also time the SQL in FILE (parameters NULL), e.g. an earlier version of a query")
    args = ap.parse_args(argv)

    print("$ python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv or sys.argv[1:])]))
    print(f"duckdb {duckdb.__version__}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "cat"
        counts = build_catalog(path, args.predictions, args.surveys, args.flag_rate)
        print(f"catalogue: {counts['sources']:,} sources, {counts['stamps']:,} stamps, "
              f"{counts['predictions']:,} predictions ({counts['flagged']:,} flagged) "
              f"over {args.surveys} surveys, built in {counts['build_s']:.1f} s")
        ref_ms, _ = time_query(path, REFERENCE, args.repeat)
        print(f"\nbest of {args.repeat} after a warm-up, through run_query (open read-only, run, to Arrow):")
        print(f"  {'reference: ' + REFERENCE:<60} {ref_ms:8.1f} ms   1.00x")
        results = {}
        for name in QUERIES:
            ms, rows = time_query(path, name, args.repeat)
            results[name] = ms
            print(f"  {name + f' ({rows:,} rows)':<60} {ms:8.1f} ms {ms / ref_ms:6.2f}x")
        for item in args.sql:
            label, _, file = item.partition("=")
            ms, rows = time_query(path, Path(file).read_text(), args.repeat)
            print(f"  {label + f' ({rows:,} rows)':<60} {ms:8.1f} ms {ms / ref_ms:6.2f}x")
        verdict = "meets" if results["candidates"] < args.target_ms else "MISSES"
        print(f"\ncandidates: {results['candidates']:.1f} ms {verdict} the {args.target_ms:.0f} ms target "
              f"for {counts['predictions']:,} predictions")
        if args.explain:
            for name in QUERIES:
                print(f"\n===== EXPLAIN ANALYZE {name}\n{explain(path, name)}")


if __name__ == "__main__":
    main()
