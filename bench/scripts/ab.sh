#!/usr/bin/env bash
# A/B of two revisions of the gateway (bench/README.md, "Comparing two
# builds"):
#
#   bash bench/scripts/ab.sh [REV_A] REV_B [loadbench flags, e.g. -ab-pairs 6]
#
# builds each revision's authgate binary into bin/authgate-ab-<short-rev>:
# a git revision from a temporary `git worktree`, removed afterwards; `.`,
# REV_A's default, from the working tree as it is (HEAD and uncommitted
# changes, named <short-rev>-dirty if there are any). Then it runs
# bench/load.sh, which installs wrk, builds loadbench from the current tree
# and pins as `make bench` does, with -bin A -ab B: alternating pairs of
# the two gateways on the reject and proxy paths, reported on stdout and in
# bench/results/ab-authgate-ab-<B>.{md,json}. BENCH_DURATION (default 10s)
# is twice each run's measured time.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
GO=${GO:-go}

usage() {
  echo "usage: bash bench/scripts/ab.sh [REV_A] REV_B [loadbench flags]" >&2
  echo "  REV_A defaults to . (the working tree); REV_B is required" >&2
  exit 2
}

revs=()
while (($#)) && ((${#revs[@]} < 2)) && [[ $1 != -* ]]; do
  revs+=("$1")
  shift
done
case ${#revs[@]} in
  1) rev_a=. rev_b=${revs[0]} ;;
  2) rev_a=${revs[0]} rev_b=${revs[1]} ;;
  *) usage ;;
esac

tmp=$(mktemp -d "${TMPDIR:-/tmp}/authgate-ab-XXXXXX")
# Removes the temporary worktrees left by a failed build, and the
# directory.
cleanup() {
  local wt
  for wt in "$tmp"/src-*; do
    [[ -d $wt ]] && git worktree remove --force "$wt" >/dev/null 2>&1 || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT

# name REV prints the name REV's binary gets: its short commit id, with
# -dirty for a working tree with uncommitted changes.
name() {
  local n
  if [[ $1 == . ]]; then
    n=$(git rev-parse --short HEAD)
    if [[ -n $(git status --porcelain --untracked-files=no) ]]; then
      n+=-dirty
    fi
  elif ! n=$(git rev-parse --verify --quiet --short "$1^{commit}"); then
    echo "bench/scripts/ab.sh: $1: no such revision" >&2
    exit 2
  fi
  echo "$n"
}

# build REV NAME builds REV's gateway into bin/authgate-ab-NAME, from a
# temporary worktree unless REV is the working tree.
build() {
  local rev=$1 out=bin/authgate-ab-$2 src=.
  if [[ $rev != . ]]; then
    src=$tmp/src-$2
    git worktree add --quiet --detach "$src" "$2"
  fi
  echo "bench/scripts/ab.sh: building $out from $([[ $src == . ]] && echo 'the working tree' || echo "$rev ($2)")" >&2
  (cd "$src" && "$GO" build -trimpath -o "$root/$out" .)
  if [[ $src != . ]]; then
    git worktree remove --force "$src"
  fi
}

name_a=$(name "$rev_a")
name_b=$(name "$rev_b")
mkdir -p bin
build "$rev_a" "$name_a"
if [[ $name_b != "$name_a" ]]; then
  build "$rev_b" "$name_b"
fi
cleanup
trap - EXIT
exec bash bench/load.sh -bin "bin/authgate-ab-$name_a" -ab "bin/authgate-ab-$name_b" "$@"
