#!/usr/bin/env bash
# Fetch, on this machine, the wheels binarycat's stamp pipeline needs on a GPU machine whose image
# has torch, torchvision, pyarrow, scipy, matplotlib, typer and rich but not these: duckdb and
# astropy (with pyerfa, its IERS data and astropy-healpix). They go to .whl/, which git ignores
# (.git/info/exclude) and which scripts/gpu-pool-run.sh installs from when it finds them missing.
#
#   bash scripts/device-wheels.sh            # versions as installed here, for CPython 3.12
#   PY_VERSION=3.11 bash scripts/device-wheels.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}
cd "$ROOT"
EXCLUDE=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$EXCLUDE")"
grep -qx '/.whl/' "$EXCLUDE" 2>/dev/null || echo '/.whl/' >> "$EXCLUDE"
mkdir -p .whl
# Pin what this machine runs, so the device computes with the versions the tests ran on.
mapfile -t PINS < <("$PY" - <<'EOF'
from importlib.metadata import version
for name in ("duckdb", "astropy", "pyerfa", "astropy-iers-data", "astropy-healpix"):
    print(f"{name}=={version(name)}")
EOF
)
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "${PY_VERSION:-3.12}" \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl "${PINS[@]}"
ls -l .whl
