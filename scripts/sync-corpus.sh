#!/usr/bin/env bash
# Copies the team's upstream corpus into tests/corpus, unchanged:
#   bash scripts/sync-corpus.sh UPSTREAM_DIR      (the team's shared/corpus)
# New files are copied in; a file that exists on both sides must be byte-identical (captures are
# never edited), otherwise the script stops and names it. Files that exist only in tests/corpus
# are listed, not deleted. Nothing else in the project reads outside the checkout: the tests,
# benchmarks and examples use tests/corpus only.
set -euo pipefail
cd "$(dirname "$0")/.."

(($# == 1)) || { echo "usage: $0 UPSTREAM_DIR" >&2; exit 2; }
src=$1
[[ -f $src/README.md ]] || { echo "sync-corpus: $src has no README.md: not a corpus" >&2; exit 1; }
dst=tests/corpus
mkdir -p "$dst"

added=0
while IFS= read -r -d '' f; do
    rel=${f#"$src"/}
    if [[ -e $dst/$rel ]]; then
        cmp -s "$f" "$dst/$rel" || { echo "sync-corpus: $rel differs from upstream" >&2; exit 1; }
    else
        mkdir -p "$(dirname "$dst/$rel")"
        cp -p "$f" "$dst/$rel"
        echo "added $rel"
        added=$((added + 1))
    fi
done < <(find "$src" -type f -print0)

while IFS= read -r -d '' f; do
    rel=${f#"$dst"/}
    [[ -e $src/$rel ]] || echo "only in $dst: $rel"
done < <(find "$dst" -type f -print0)
echo "sync-corpus: $added file(s) added"
