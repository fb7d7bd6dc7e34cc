#!/usr/bin/env bash
# Build the cfsroot of an earlier commit as it shipped, for `make bench`'s
# before/after figures (BENCH_COMPARE). Issue 12's baseline is the last
# landing before the move to Node 24 (a4b51ba), whose Makefile builds the
# executable from the machine's own node: Node 20 on the Debian 12 machines.
#
# usage: bench/build-baseline.sh REV OUT
set -euo pipefail
rev=$1 out=$2
src="build/bench/baseline-src-$rev"
if [ ! -x "$src/dist/cfsroot" ]; then
  rm -rf "$src"
  mkdir -p "$src"
  git archive "$rev" | tar -x -C "$src"
  # The old Makefile builds with `node` from PATH; say which one that is.
  echo "baseline $rev: built with $(command -v node) $(node --version)"
  (cd "$src" && npm ci --no-audit --no-fund --loglevel=error && make --no-print-directory dist/cfsroot)
fi
mkdir -p "$(dirname "$out")"
cp "$src/dist/cfsroot" "$out"
