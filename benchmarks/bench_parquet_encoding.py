"""Which Parquet encoding to use for float32 stamp images: size and read/write speed.

Writes the same set of realistic stamps (stacked signal-to-noise maps of simulated stars:
mostly noise, a few bright cores) in both shard layouts of `binarycat.catalog.arrays`
(``blob``: one raw float32 byte string per stamp; ``list``: a list of float32, the layout of
earlier versions) with several encodings and compressions, and prints, in one run on one
machine, each variant's bytes per pixel, write and read speed (`read_array_shard`), and the
ratio of each to the reference (list, PLAIN encoding, no compression). Every variant is
checked to round-trip bit-exact.

Run:  python benchmarks/bench_parquet_encoding.py [--stamps 2000] [--size 64]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from binarycat.catalog.arrays import read_array_shard, write_array_shard

_PIX = "pixels.list.element"


def _variant(encoding: str, compression: str, level: int | None = None) -> dict:
    return dict(layout="list", compression=compression, compression_level=level, column_encoding={_PIX: encoding})


def _blob(compression: str, level: int | None = None) -> dict:
    return dict(layout="blob", compression=compression, compression_level=level)


VARIANTS = {
    "list, plain, none (reference)": _variant("PLAIN", "none"),
    "list, plain, zstd-3": _variant("PLAIN", "zstd", 3),
    "list, byte_stream_split, none": _variant("BYTE_STREAM_SPLIT", "none"),
    "list, byte_stream_split, zstd-3 (earlier)": _variant("BYTE_STREAM_SPLIT", "zstd", 3),
    "list, byte_stream_split, zstd-9": _variant("BYTE_STREAM_SPLIT", "zstd", 9),
    "blob, none": _blob("none"),
    "blob, lz4 (chosen)": _blob("lz4"),
    "blob, zstd-1": _blob("zstd", 1),
}


def realistic_stamps(n: int, size: int, seed: int = 0) -> list[np.ndarray]:
    """Noise-dominated S/N maps with one or two Gaussian stars, as the stacker produces."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size]
    out = []
    for _ in range(n):
        img = rng.normal(0, 1, (size, size))
        sigma = rng.uniform(0.8, 6)
        for _ in range(rng.integers(1, 3)):
            cx, cy = rng.normal(size / 2, 3, 2)
            img += rng.lognormal(5, 1.5) * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * sigma**2))
        out.append(img.astype(np.float32))
    return out


def measure(stamps, variant: dict, directory: Path) -> dict:
    path = directory / "shard.parquet"
    hashes = [str(i) for i in range(len(stamps))]
    t = time.perf_counter()
    write_array_shard(path, hashes, stamps, **variant)
    t_write = time.perf_counter() - t
    t = time.perf_counter()
    back = read_array_shard(path)
    t_read = time.perf_counter() - t
    assert all(a.tobytes() == b.tobytes() for a, b in zip(stamps, back)), "not bit-exact"
    n_pix = sum(a.size for a in stamps)
    return {"bytes_per_pixel": path.stat().st_size / n_pix, "write_mpix_s": n_pix / t_write / 1e6,
            "read_mpix_s": n_pix / t_read / 1e6}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stamps", type=int, default=2000)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3, help="best of N timings")
    args = ap.parse_args(argv)
    stamps = realistic_stamps(args.stamps, args.size)
    results = {}
    with tempfile.TemporaryDirectory() as d:
        for name, variant in VARIANTS.items():
            runs = [measure(stamps, variant, Path(d)) for _ in range(args.repeat)]
            results[name] = {
                "bytes_per_pixel": runs[0]["bytes_per_pixel"],
                "write_mpix_s": max(r["write_mpix_s"] for r in runs),
                "read_mpix_s": max(r["read_mpix_s"] for r in runs),
            }
    ref = results["list, plain, none (reference)"]
    print(f"{args.stamps} stamps of {args.size}x{args.size} float32 "
          f"({args.stamps * args.size**2 * 4 / 1e6:.1f} MB raw); all variants bit-exact")
    print(f"{'variant':<42} {'B/pix':>6} {'size/ref':>9} {'write Mpix/s':>13} {'w/ref':>6} "
          f"{'read Mpix/s':>12} {'r/ref':>6}")
    for name, r in results.items():
        print(f"{name:<42} {r['bytes_per_pixel']:6.3f} {r['bytes_per_pixel'] / ref['bytes_per_pixel']:9.3f} "
              f"{r['write_mpix_s']:13.1f} {r['write_mpix_s'] / ref['write_mpix_s']:6.2f} "
              f"{r['read_mpix_s']:12.1f} {r['read_mpix_s'] / ref['read_mpix_s']:6.2f}")


if __name__ == "__main__":
    main()
