#!/bin/sh
# Runs the Python analysis tests (tests/test_analysis.py) with Debian's interpreter, which carries
# h5py, numpy and matplotlib (python3-h5py, python3-numpy, python3-matplotlib). Exit 77 (CTest:
# skipped) when that interpreter or one of the modules is missing. RLKV_PYTHON overrides the
# interpreter. Extra arguments go to unittest (e.g. -k heatmap).
set -u
PY=${RLKV_PYTHON:-/usr/bin/python3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ ! -x "$PY" ]; then
  echo "run_python_tests.sh: $PY not found; skipping the analysis tests" >&2
  exit 77
fi
if ! "$PY" -c 'import h5py, numpy, matplotlib' >/dev/null 2>&1; then
  echo "run_python_tests.sh: $PY lacks h5py, numpy or matplotlib (apt-get install python3-h5py python3-matplotlib); skipping" >&2
  exit 77
fi
# A private matplotlib cache: CI homes may be read-only, and parallel runs must not share one.
MPLCONFIGDIR=$(mktemp -d "${TMPDIR:-/tmp}/rlkv-mpl.XXXXXX") || exit 1
export MPLCONFIGDIR MPLBACKEND=Agg
trap 'rm -rf "$MPLCONFIGDIR"' EXIT INT TERM
cd "$ROOT" || exit 1
"$PY" -m unittest "$@" tests/test_analysis.py
