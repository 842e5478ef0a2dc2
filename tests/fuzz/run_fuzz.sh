#!/usr/bin/env bash
# Builds and runs the safetensors header fuzzer for SECONDS (default 30). Kept as a script, not a
# CMake target, because it needs clang's libFuzzer runtime and sanitizers while the main build may
# use gcc; exit 77 is the conventional "skipped" status for test drivers when those are missing.
# Usage: tests/fuzz/run_fuzz.sh [SECONDS]   (exit 0: no crash; non-zero: crash or build failure)
set -u
SECONDS_TO_RUN="${1:-30}"
case "$SECONDS_TO_RUN" in ''|*[!0-9]*) echo "run_fuzz.sh: SECONDS must be a whole number, got '$SECONDS_TO_RUN'" >&2; exit 2;; esac
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CXX="${CLANGXX:-clang++}"

if ! command -v "$CXX" >/dev/null 2>&1; then
  echo "run_fuzz.sh: $CXX not found; skipping (install clang and libfuzzer)" >&2
  exit 77
fi
WORK="$(mktemp -d "${TMPDIR:-/tmp}/rlkv_fuzz.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# Probe for libFuzzer separately so a missing runtime is a skip, not a failure of our code.
printf 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }\n' > "$WORK/probe.cpp"
if ! "$CXX" -fsanitize=fuzzer "$WORK/probe.cpp" -o "$WORK/probe" >/dev/null 2>&1; then
  echo "run_fuzz.sh: $CXX cannot link -fsanitize=fuzzer (libFuzzer missing); skipping" >&2
  exit 77
fi

echo "run_fuzz.sh: building with $("$CXX" --version | head -n1)"
if ! "$CXX" -std=c++17 -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
     -fno-sanitize-recover=undefined -I"$REPO" \
     "$REPO/tests/fuzz/fuzz_safetensors_header.cpp" "$REPO/runtime/safetensors.cpp" "$REPO/core/error.cpp" \
     -o "$WORK/fuzz_safetensors_header"; then
  echo "run_fuzz.sh: build failed" >&2
  exit 1
fi

# The seeds are copied so that inputs the fuzzer discovers stay out of the source tree.
mkdir -p "$WORK/corpus"
cp "$REPO"/tests/fuzz/seeds/safetensors/* "$WORK/corpus/" 2>/dev/null || true
cd "$WORK"
"$WORK/fuzz_safetensors_header" -max_total_time="$SECONDS_TO_RUN" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$WORK/" "$WORK/corpus" > "$WORK/log" 2>&1
rc=$?
runs="$(grep -E '^stat::number_of_executed_units:' "$WORK/log" | awk '{print $2}')"
if [ "$rc" -ne 0 ]; then
  tail -n 60 "$WORK/log" >&2
  # Keep the crashing input where the user can find it after the temp dir is removed.
  for a in "$WORK"/crash-* "$WORK"/leak-* "$WORK"/timeout-* "$WORK"/oom-*; do
    [ -e "$a" ] && cp "$a" "${TMPDIR:-/tmp}/" && echo "run_fuzz.sh: reproducer saved to ${TMPDIR:-/tmp}/$(basename "$a")" >&2
  done
  echo "run_fuzz.sh: FAILED after ${runs:-?} runs (fuzzer exit $rc)" >&2
  exit 1
fi
grep -E '^#[0-9]+.*DONE' "$WORK/log" | tail -n 1
echo "run_fuzz.sh: OK, ${runs:-?} runs in ${SECONDS_TO_RUN} s, no crash"
exit 0
