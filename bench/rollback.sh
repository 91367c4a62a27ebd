#!/usr/bin/env bash
# How long the rollback check takes against manifests of the largest allowed size (8 MiB).
#
#   bench/rollback.sh            # 5 runs
#   RUNS=9 bench/rollback.sh     # another number of runs
#
# Builds the release binary and the `rollback` example, which makes, in bench/work/rollback/,
# an origin with an 8 MiB manifest (about 100,000 entries), a destination whose manifest has
# all of them but the newest, and a config for them, and times in-process the parsing and
# the rollback check (`Manifest::missing_from`). Then it times whole `tako fetch --no-verify`
# runs: the first installs the newest version; every later one re-checks the destination's
# 8 MiB manifest against the origin's (both parsed and verified, then compared) and is up to
# date. Wall times come from the shell's clock; the median and the slowest are printed.
set -euo pipefail

RUNS=${RUNS:-5}
case $RUNS in '' | *[!0-9]* | 0) echo "RUNS must be a positive whole number" >&2; exit 2 ;; esac

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=$root/bench/work/rollback
cd "$root"

command -v cargo >/dev/null 2>&1 || { echo "cargo is needed: https://rustup.rs" >&2; exit 1; }
echo "building the release binary and the rollback example" >&2
cargo build --release --locked --quiet --bin tako --example rollback
target_dir=$(cargo metadata --format-version 1 --no-deps 2>/dev/null |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
target_dir=${target_dir:-$root/target}
tako=$target_dir/release/tako

rm -rf "$work"
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
"$target_dir/release/examples/rollback" "$work" "$RUNS"

# One line per run: wall seconds.
times=()
measure() {
    local t0 t1
    t0=$EPOCHREALTIME
    "$tako" fetch --no-verify "$work/app.tako" >"$work/out"
    t1=$EPOCHREALTIME
    times+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", b - a }')")
}

measure
echo "first tako fetch (installs 2.0.0): $(awk '{ printf "%.0f ms", $1 * 1000 }' <<<"${times[0]}"): $(cat "$work/out")"
times=()
for _ in $(seq "$RUNS"); do measure; done
printf '%s\n' "${times[@]}" | sort -g | awk -v out="$(cat "$work/out")" '
    { t[NR] = $1 }
    END { printf "later tako fetch (re-check, nothing new): median %.0f ms, slowest %.0f ms: %s\n",
          t[int((NR + 1) / 2)] * 1000, t[NR] * 1000, out }'
