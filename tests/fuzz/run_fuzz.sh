#!/usr/bin/env bash
# Builds and runs a libFuzzer target for SECONDS (default 30). Kept as a script, not a CMake target,
# because it needs clang's libFuzzer runtime and sanitizers while the main build may use gcc; exit 77
# is the conventional "skipped" status for test drivers when those are missing.
# Usage: tests/fuzz/run_fuzz.sh [SECONDS] [TARGET]   (exit 0: no crash; non-zero: crash or build failure)
#   TARGET: safetensors_header (default): runtime/safetensors.cpp's header parser
#           rewards: answer extraction and comparison (tests/fuzz/fuzz_rewards.cpp)
#           messages: the wire-message decoder (tests/fuzz/fuzz_messages.cpp)
#           tokenizer: tokenizer.json loading and encode / decode (tests/fuzz/fuzz_tokenizer.cpp)
#           inputs: the readers of configs, datasets, head scores and config.json (tests/fuzz/fuzz_inputs.cpp)
set -u
SECONDS_TO_RUN="${1:-30}"
TARGET="${2:-safetensors_header}"
case "$SECONDS_TO_RUN" in ''|*[!0-9]*) echo "run_fuzz.sh: SECONDS must be a whole number, got '$SECONDS_TO_RUN'" >&2; exit 2;; esac
case "$TARGET" in
  safetensors_header|rewards|messages|tokenizer|inputs) ;;
  *) echo "run_fuzz.sh: TARGET must be safetensors_header, rewards, messages, tokenizer or inputs, got '$TARGET'" >&2
     exit 2;;
esac
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

COMPILE_FLAGS=()
EXTRA_FLAGS=()  # the fuzzer's own options
LINK_FLAGS=()
if [ "$TARGET" = safetensors_header ]; then
  SOURCES=("$REPO/tests/fuzz/fuzz_safetensors_header.cpp" "$REPO/runtime/safetensors.cpp" "$REPO/core/error.cpp" "$REPO/core/json_strict.cpp")
elif [ "$TARGET" = messages ]; then
  SOURCES=("$REPO/tests/fuzz/fuzz_messages.cpp" "$REPO/comm/messages.cpp" "$REPO/core/crc32.cpp" "$REPO/core/error.cpp"
           "$REPO/core/finish_reason.cpp" "$REPO/comm/frame_auth.cpp" "$REPO/core/durable_file.cpp")
  LINK_FLAGS=(-lsodium)
elif [ "$TARGET" = tokenizer ]; then
  SOURCES=("$REPO/tests/fuzz/fuzz_tokenizer.cpp" "$REPO/runtime/tokenizer.cpp" "$REPO/core/error.cpp"
           "$REPO/core/json_strict.cpp" "$REPO/core/durable_file.cpp")
  COMPILE_FLAGS=(-DRLKV_FUZZ_FIXTURES="\"$REPO/tests/fixtures\"")
  LINK_FLAGS=($(pkg-config --libs libpcre2-8 icu-uc 2>/dev/null || echo -lpcre2-8 -licuuc -licudata))
elif [ "$TARGET" = inputs ]; then
  SOURCES=("$REPO/tests/fuzz/fuzz_inputs.cpp" "$REPO/core/config.cpp" "$REPO/problems/dataset.cpp"
           "$REPO/masks/head_mask.cpp" "$REPO/runtime/model_config.cpp" "$REPO/core/json_strict.cpp"
           "$REPO/core/error.cpp" "$REPO/core/durable_file.cpp")
  LINK_FLAGS=(-lboost_program_options)
else
  SOURCES=("$REPO/tests/fuzz/fuzz_rewards.cpp" "$REPO"/rewards/extract.cpp "$REPO"/rewards/math_normalize.cpp
           "$REPO"/rewards/math_expr.cpp "$REPO"/rewards/math_equal.cpp "$REPO"/rewards/length_reward.cpp
           "$REPO"/rewards/reward.cpp "$REPO/core/error.cpp" "$REPO/core/finish_reason.cpp")
fi
echo "run_fuzz.sh: building fuzz_$TARGET with $("$CXX" --version | head -n1)"
if ! "$CXX" -std=c++17 -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
     -fno-sanitize-recover=undefined -I"$REPO" "${COMPILE_FLAGS[@]}" "${SOURCES[@]}" "${LINK_FLAGS[@]}" \
     -o "$WORK/fuzz_$TARGET"; then
  echo "run_fuzz.sh: build failed" >&2
  exit 1
fi

# The seeds are copied so that inputs the fuzzer discovers stay out of the source tree.
mkdir -p "$WORK/corpus"
if [ "$TARGET" = safetensors_header ]; then
  cp "$REPO"/tests/fuzz/seeds/safetensors/* "$WORK/corpus/" 2>/dev/null || true
elif [ "$TARGET" = messages ]; then
  cp "$REPO"/tests/fuzz/seeds/messages/* "$WORK/corpus/" 2>/dev/null || true
elif [ "$TARGET" = tokenizer ]; then
  # Byte 0 says what follows (fuzz_tokenizer.cpp): 0 text, 2 text with special tokens, 1 a
  # tokenizer.json (the toy model's; the fixtures' are larger than -max_len).
  seed() { printf '%b' "$2" > "$WORK/corpus/$1"; }
  seed text '\x00Hello world! It'"'"'s 2024: caf\xc3\xa9, e\xcc\x81, \xe4\xb8\xad\xe6\x96\x87, \xf0\x9f\x98\x80\r\n\t  12345'
  seed added '\x02<|im_start|>user\n<think>1+1</think><|im_end|><|endoftext|>'
  seed invalid '\x00ok \xff\xfe\xc0\xaf\xed\xa0\x80\xe2\x82 end'
  { printf '\x01'; cat "$REPO/models/toy-reasoner/tokenizer.json"; } > "$WORK/corpus/toy_json"
elif [ "$TARGET" = inputs ]; then
  # Byte 0 (fuzz_inputs.cpp): 0 a config (then NUL and an override), 1 a dataset, 2 head scores
  # (a TSV, then NUL and a DuoAttention config.json; 6: an rlkv-head-mask JSON), 3 a config.json.
  for c in "$REPO"/configs/*.ini; do { printf '\x00'; cat "$c"; printf '\x00rollout.group_size=4'; } > "$WORK/corpus/$(basename "$c")"; done
  { printf '\x01'; head -n 8 "$REPO/data/toy-train.jsonl"; } > "$WORK/corpus/dataset"
  printf '\x01{"id": "a", "prompt": "1+1?", "answer": 2, "ref_len": 12.5, "pass_rate": 0.5}\n{"id": 7, "prompt": "x", "answer": "y"}\n' \
    > "$WORK/corpus/prepared"
  printf '\x020.1\t0.9\t0.5\n1\t0\t0.25\n\x00{"sink_size": 16, "recent_size": 64}' > "$WORK/corpus/duo"
  { printf '\x02'; cat "$REPO"/tests/fixtures/published/rlkv/*/adapter_weights.tsv 2>/dev/null | head -n 4; } > "$WORK/corpus/sglang"
  printf '\x06{"format": "rlkv-head-mask/v1", "num_layers": 2, "num_kv_heads": 2, "scores": [[0.1, 0.9], [1, 0]]}' \
    > "$WORK/corpus/mask_json"
  for m in "$REPO"/tests/fixtures/models/*/config.json "$REPO"/models/*/config.json; do
    { printf '\x03'; cat "$m"; } > "$WORK/corpus/config_$(basename "$(dirname "$m")")"
  done
else
  # Seeds: byte 0 flags, 2 bytes reference length, reference, response (see fuzz_rewards.cpp); and a
  # dictionary of the tokens the parsers branch on.
  seed() { printf '%b' "$2" > "$WORK/corpus/$1"; }
  seed boxed '\x00\x02\x0042so \\boxed{42}.'
  seed frac '\x00\x0b\x00\\frac{1}{2}The final answer is $0.5$. I hope it is correct.'
  seed think '\x04\x01\x007<think>\\boxed{3}</think> the answer is 7'
  seed gsm8k '\x00\x0c\x00a\n#### 1,234\\boxed{1234}'
  seed interval '\x00\x19\x00(-\\infty,1)\\cup(2,\\infty)\\boxed{(2,\\infty)\\cup(-\\infty,1)}'
  seed set '\x00\x09\x00\\{1,2,3\\}\\boxed{3, 2, 1}'
  seed toy '\x01\x02\x0080Q:23+45+12=23+45=68;68+12=80;A:80'
  seed units '\x00\x02\x0030\\boxed{30^\\circ} or \\boxed{30\\text{ cm}^2}'
  seed choice '\x00\x03\x00(B)Answer: \\text{(B)}'
  seed expr '\x00\x09\x00(x+1)^{2}\\boxed{x^2+2x+1}'
  for t in '\boxed{' '\fbox{' '\frac' '\dfrac' '\sqrt' '\sqrt[3]' '\text{' '\left(' '\right)' '\{' '\}' \
           '\cup' '\in' '\infty' '\pi' '\cdot' '\times' '\binom' '^\circ' '\%' '\,' '{,}' '</think>' '<think>' \
           'final answer is' 'answer is' 'Answer:' '####' 'A:' 'e-' '1,000' '\$' '\alpha' 'x_{1}' '5!'; do
    printf '"%s"\n' "$(printf '%s' "$t" | sed 's/\\/\\\\/g; s/"/\\"/g')"
  done > "$WORK/rewards.dict"
  EXTRA_FLAGS=(-dict="$WORK/rewards.dict")
fi
cd "$WORK"
"$WORK/fuzz_$TARGET" -max_total_time="$SECONDS_TO_RUN" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$WORK/" "${EXTRA_FLAGS[@]}" "$WORK/corpus" > "$WORK/log" 2>&1
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
echo "run_fuzz.sh: OK, fuzz_$TARGET: ${runs:-?} runs in ${SECONDS_TO_RUN} s, no crash"
exit 0
