#!/usr/bin/env bash
# Train the stamp classifier from scratch on the whole simulated training pool, then score it on
# fresh skies against the Moffat-fit baseline: issue 4's done-when in one command.
#
# Made for a lent GPU machine (docs/gpu-session.md says how to call it there), and runs anywhere
# binarycat is installed; on 2 CPU cores use SCALE and TRAIN_ARGS to make a smoke run of it:
#
#   SCALE=0.004 INPUT_SIZE=64 TRAIN_ARGS="--epochs 1" BENCH=0 bash scripts/gpu-pool-run.sh
#
# Settings (environment variables):
#   WORK         working folder: simulated FITS, the catalogue, logs      [/tmp/binarycat-pool]
#   REPORTS      where the reports go (train.json, train.log, eval-*.txt, eval-*.parquet) [$WORK/reports]
#   SCALE        multiplies the number of sources of every sky             [1]
#   INPUT_SIZE   model input, pixels (the field stays 6.4")                 [224]
#   TRAIN_ARGS   extra `binarycat train` options                            [--epochs 40 --patience 12 --max-minutes 14]
#   EVAL_SEEDS   seeds of the fresh skies, Moffat beta 2-5 then Gaussian    [33 34]
#   BENCH        1: first run benchmarks/bench_stamp_io.py at INPUT_SIZE (issue 4 asks for its
#                figures on each device) into $REPORTS/bench_stamp_io.txt     [1]
#   BENCH_ARGS   extra options of that benchmark                            []
#   PYTHON       the interpreter that has (or gets) binarycat's needs       [python3]
#
# Every step can be run again: simulate writes the same files, ingest and label import add
# nothing twice, and a step whose marker file exists is skipped.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}
WORK=${WORK:-/tmp/binarycat-pool}
REPORTS=${REPORTS:-$WORK/reports}
SCALE=${SCALE:-1}
INPUT_SIZE=${INPUT_SIZE:-224}
TRAIN_ARGS=${TRAIN_ARGS:---epochs 40 --patience 12 --max-minutes 14}
read -r -a EVAL_SEEDS <<< "${EVAL_SEEDS:-33 34}"
SURVEYS=PanSTARRS,SDSS9,HST
mkdir -p "$WORK" "$REPORTS"

# The device image has torch, pyarrow, scipy, typer and rich but not duckdb or astropy: their
# wheels travel in .whl/ (scripts/device-wheels.sh fetches them).
if ! "$PY" -c "import duckdb, astropy, astropy_healpix" 2>/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$WORK/site" "$ROOT"/.whl/*.whl
    export PYTHONPATH="$WORK/site"
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
CAT="$WORK/catalog"

bc() { "$PY" -m binarycat "$@"; }
say() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
scaled() { "$PY" -c "import sys; print(max(10, round(int(sys.argv[1]) * float(sys.argv[2]))))" "$1" "$SCALE"; }

# name seed first_id sources surveys simulate-options.  The training pool is every training sky
# of the documented lineage (docs/stamp-classifier-results.md) but the two that did not help
# (seeds 6 and 28): Gaussian seeds 1, 3, 4 (pairs at the PS1/SDSS9 limit) and 5 (faint
# companions), Moffat seeds 16, 17, 18, 20, the HST boundary sky 25 and the faint Moffat sky 30.
POOL=(
  "sim1  1  0      3000 $SURVEYS"
  "sim3  3  3000   3000 $SURVEYS"
  "sim4  4  6000   3000 $SURVEYS --separation-range 0.85,1.75"
  "sim5  5  200000 3000 $SURVEYS --flux-ratio-range 0.1,0.3 --binary-fraction 0.7"
  "sim16 16 10000  700  $SURVEYS --psf moffat --moffat-beta 2.0"
  "sim17 17 11000  700  $SURVEYS --psf moffat --moffat-beta 3.0"
  "sim18 18 12000  700  $SURVEYS --psf moffat --moffat-beta 4.5"
  "sim20 20 13000  1500 $SURVEYS --psf moffat --moffat-beta 2,5"
  "sim25 25 870000 2600 HST --separation-range 0.06,0.3 --flux-ratio-range 0.1,0.4 --psf moffat --moffat-beta 2,5"
  "sim30 30 920000 2000 $SURVEYS --flux-ratio-range 0.05,0.3 --binary-fraction 0.7 --psf moffat --moffat-beta 2,5"
)
POOL_IDS=0-8999,10000-14499,200000-202999,870000-872599,920000-921999
EVAL=(
  "sim${EVAL_SEEDS[0]} ${EVAL_SEEDS[0]} 950000 1000 $SURVEYS --psf moffat --moffat-beta 2,5"
  "sim${EVAL_SEEDS[1]} ${EVAL_SEEDS[1]} 960000 1000 $SURVEYS"
)

if [ "${BENCH:-1}" = 1 ] && [ ! -s "$REPORTS/bench_stamp_io.txt" ]; then
    say "benchmarks/bench_stamp_io.py --input-size $INPUT_SIZE"
    # shellcheck disable=SC2086
    "$PY" "$ROOT/benchmarks/bench_stamp_io.py" --input-size "$INPUT_SIZE" --workdir "$WORK/bench" \
        ${BENCH_ARGS:-} > "$REPORTS/bench_stamp_io.txt.part"
    mv "$REPORTS/bench_stamp_io.txt.part" "$REPORTS/bench_stamp_io.txt"
fi

[ -e "$CAT/catalog.duckdb" ] || bc --catalog "$CAT" init
for sky in "${POOL[@]}" "${EVAL[@]}"; do
    read -r name seed first n surveys opts <<< "$sky"
    dir="$WORK/$name"
    [ -e "$dir/.stored" ] && continue
    say "simulate $name (seed $seed)"
    # shellcheck disable=SC2086  # opts holds several options
    bc simulate "$dir" --sources "$(scaled "$n")" --surveys "$surveys" --seed "$seed" --first-id "$first" $opts
    bc --catalog "$CAT" sources import "$dir/sources.csv"
    for s in ${surveys//,/ }; do bc --catalog "$CAT" ingest "$dir/$s" --survey "$s"; done
    bc --catalog "$CAT" label import "$dir/truth.csv" --labeller simulator
    touch "$dir/.stored"
done

if [ ! -s "$REPORTS/train.json" ]; then
    say "train from scratch: --input-size $INPUT_SIZE --ids $POOL_IDS $TRAIN_ARGS"
    # shellcheck disable=SC2086
    bc --catalog "$CAT" train --surveys "$SURVEYS" --arch resnet34-stem --input-size "$INPUT_SIZE" \
        --ids "$POOL_IDS" $TRAIN_ARGS --format json > "$REPORTS/train.json.part" 2> >(tee "$REPORTS/train.log" >&2)
    mv "$REPORTS/train.json.part" "$REPORTS/train.json"
fi
MODEL=$("$PY" -c "import json, sys; print(json.load(open(sys.argv[1]))['model_id'])" "$REPORTS/train.json")

for sky in "${EVAL[@]}"; do
    read -r name seed first n surveys opts <<< "$sky"
    last=$((first + $(scaled "$n") - 1))
    say "evaluate $MODEL on $name (ids $first-$last), beside the Moffat-fit baseline"
    bc --catalog "$CAT" evaluate --model "$MODEL" --on unseen --ids "$first-$last" --baseline-psf moffat \
        --truth "$WORK/$name/truth.csv" --stamps "$REPORTS/eval-$name.parquet" | tee "$REPORTS/eval-$name.txt"
done
say "done: $MODEL; reports in $REPORTS"
