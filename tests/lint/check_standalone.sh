#!/usr/bin/env bash
# The repository stands alone: no tracked file may refer to a folder beside the checkout (a user's
# clone has nothing there), and no code or comment may cite an issue number (a reader of the
# repository has only the code). Usage: check_standalone.sh SOURCE_DIR. Exit 0 clean, 1 with the
# offending lines.
set -euo pipefail
src=${1:-$(dirname "$0")/../..}
cd "$src"
# The patterns are written so that this file does not match itself.
outside='\.\./s[h]ared'
issue='[Ii]ssues? #?[0-9]'
search() {  # pattern, pathspecs...
  local pattern=$1; shift
  if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git grep -nIE "$pattern" -- "$@" || true
  else
    grep -rnIE "$pattern" --exclude-dir=build --exclude-dir='build-*' --exclude-dir=.git . || true
  fi
}
status=0
hits=$(search "$outside" '*')
if [ -n "$hits" ]; then
  echo "check_standalone.sh: files refer to a folder outside the repository:"
  echo "$hits"
  status=1
fi
hits=$(search "$issue" '*.cpp' '*.h' '*.cu' '*.cuh' '*.sh' '*.py' '*.txt' '*.ini' '*.md')
if [ -n "$hits" ]; then
  echo "check_standalone.sh: code or documents cite issue numbers (say what the code does instead):"
  echo "$hits"
  status=1
fi
[ $status -eq 0 ] && echo "check_standalone.sh: the tree refers to nothing outside itself"
exit $status
