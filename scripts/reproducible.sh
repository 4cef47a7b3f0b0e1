#!/usr/bin/env bash
# Checks that two builds of one commit give the same binary: clones the
# commit (default HEAD) twice, into directories of different names, and runs
# scripts/package.sh in each with a target directory of its own, then
# compares the binaries' and the packages' SHA-256 (on a difference, both
# binaries are kept in dist/reproducible/ and the differing text is shown).
# Two release builds from scratch: about an hour on 2 cores, so CI does not
# run it.
# Usage: scripts/reproducible.sh [COMMIT]
set -euo pipefail
cd "$(dirname "$0")/.."
commit=$(git rev-parse "${1:-HEAD}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for side in first second-build; do
  git clone --quiet --no-checkout . "$work/$side"
  git -C "$work/$side" checkout --quiet "$commit"
  started=$(date +%s)
  (cd "$work/$side" && CARGO_TARGET_DIR="$work/$side-target" scripts/package.sh >/dev/null)
  echo "$side: built in $(( $(date +%s) - started )) s"
  rm -rf "$work/$side-target"
done
status=0
for file in $(cd "$work/first/dist" && ls); do
  one=$(sha256sum <"$work/first/dist/$file" | cut -d' ' -f1)
  two=$(sha256sum <"$work/second-build/dist/$file" | cut -d' ' -f1)
  if [ "$one" = "$two" ]; then
    echo "same      $file  $one  ($(du -k "$work/first/dist/$file" | cut -f1) KB)"
  else
    echo "DIFFERENT $file  $one  $two"
    status=1
  fi
done
if [ $status != 0 ]; then
  # Kept for a look: the two binaries, and the text that differs.
  kept=dist/reproducible
  rm -rf "$kept" && mkdir -p "$kept"
  for side in first second-build; do
    cp "$work/$side/dist"/cutover-*-linux-* "$kept/cutover-$side"
  done
  echo "differing bytes: $(cmp -l "$kept/cutover-first" "$kept/cutover-second-build" | wc -l)"
  diff <(strings -n 8 "$kept/cutover-first") <(strings -n 8 "$kept/cutover-second-build") | head -n 20 || true
  echo "the binaries are in $kept/"
fi
exit $status
