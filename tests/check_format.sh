#!/bin/sh
# Fails if a C source or header of the repository is not formatted with the
# repo's .clang-format (run `clang-format -i FILE` to fix). Files come from
# git when the tree is a checkout, else from find.
set -eu
cd "$(dirname "$0")/.."
if ! command -v clang-format >/dev/null 2>&1; then
    echo "clang-format is not installed (tools/install-deps installs it)" >&2
    exit 1
fi
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    files=$(git ls-files --cached --others --exclude-standard -- '*.c' '*.h')
else
    files=$(find common store raft node northbound tools tests -name '*.[ch]')
fi
bad=0
for f in $files; do
    [ -f "$f" ] || continue
    if ! clang-format --dry-run --Werror "$f" >/dev/null 2>&1; then
        echo "not formatted: $f"
        bad=1
    fi
done
exit $bad
