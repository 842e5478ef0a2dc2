#!/usr/bin/env bash
# The tree is formatted: every tracked C++ / CUDA source is what clang-format (.clang-format at the
# root) makes of it. Usage: check_format.sh SOURCE_DIR. Exit 0 formatted, 1 with the files that are
# not (reformat them with: clang-format -i FILE), 77 without clang-format.
set -euo pipefail
cd "${1:-$(dirname "$0")/../..}"
CF=${CLANG_FORMAT:-clang-format}
if ! command -v "$CF" > /dev/null; then
  echo "check_format.sh: $CF not found; skipped"
  exit 77
fi
mapfile -t files < <(git ls-files '*.cpp' '*.h' '*.cu' '*.cuh' 2>/dev/null || find . -name '*.cpp' -o -name '*.h')
bad=()
for f in "${files[@]}"; do
  "$CF" --dry-run -Werror "$f" > /dev/null 2>&1 || bad+=("$f")
done
if [ ${#bad[@]} -gt 0 ]; then
  echo "check_format.sh: ${#bad[@]} file(s) not formatted (clang-format -i FILE): ${bad[*]}"
  exit 1
fi
echo "check_format.sh: ${#files[@]} files formatted"
