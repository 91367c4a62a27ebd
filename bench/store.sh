#!/usr/bin/env bash
# `tako store` with its chunk index against `openssl dgst -sha256` of the same file, in
# one interleaved loop.
#
#   bench/store.sh                      # a 1 GiB random image, 5 runs
#   SIZE_MIB=4096 RUNS=7 bench/store.sh # a larger image, more runs
#   SIZE_MIB=64 RUNS=1 bench/store.sh   # a quick smoke run
#   TAKO=/path/to/tako bench/store.sh   # another tako binary
#
# Each round runs, in turn: `openssl dgst -sha256 IMAGE`, `tako store` (with its index)
# into an empty server directory, and `tako store --no-index` likewise; one warm-up round
# is not counted. The image is read once first, so the page cache is warm. Wall time is
# the shell's clock; CPU (user + system) and peak RSS are GNU time's. Medians of RUNS,
# "fastest" the shortest wall time, peak RSS the largest seen; ratios against openssl's
# median. Needs cargo and openssl; installs GNU time and openssl with apt-get if missing.
# Everything lives in bench/work/store (git-ignored); the table is
# bench/work/store-results-<size>M.md.
set -euo pipefail

SIZE_MIB=${SIZE_MIB:-1024}
RUNS=${RUNS:-5}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"
require_positive SIZE_MIB RUNS
work=$root/bench/work/store
cd "$root"

missing=()
[ -x /usr/bin/time ] || missing+=(time)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
apt_install "${missing[@]}"
TAKO=$(release_tako "$root")

rm -rf "$work"
mkdir -p "$work/times"
trap 'rm -rf "$work/srv" "$work/image"' EXIT
head -c $((SIZE_MIB << 20)) /dev/urandom > "$work/image"
cat "$work/image" > /dev/null
key=$(tr -d '\n' < tests/vectors/test-key.secret)
printf '%s' "$key" > "$work/secret"

names=("openssl dgst -sha256 FILE" "tako store (with its index)" "tako store --no-index")
run() { # N ROUND
    local out="$work/times/$1" start end
    rm -rf "$work/srv" && mkdir "$work/srv"
    start=$(date +%s%N)
    case $1 in
        0) /usr/bin/time -f '%U %S %M' -o "$work/rusage" openssl dgst -sha256 "$work/image" >/dev/null ;;
        1) /usr/bin/time -f '%U %S %M' -o "$work/rusage" "$TAKO" store -f "$work/secret" -o "$work/srv" "$work/image" 1.0 >/dev/null ;;
        2) /usr/bin/time -f '%U %S %M' -o "$work/rusage" "$TAKO" store --no-index -f "$work/secret" -o "$work/srv" "$work/image" 1.0 >/dev/null ;;
    esac
    end=$(date +%s%N)
    [ "$2" -eq 0 ] && return
    read -r user sys rss < "$work/rusage"
    echo "$(((end - start) / 1000)) $user $sys $rss" >> "$out"
}
for round in $(seq 0 "$RUNS"); do
    for n in 0 1 2; do run "$n" "$round"; done
done
[ -s "$work/srv/index/$(sha256sum "$work/image" | cut -d ' ' -f 1)" ] && {
    echo "tako store --no-index wrote an index" >&2
    exit 1
}

results=$root/bench/work/store-results-${SIZE_MIB}M.md
{
    echo "$SIZE_MIB MiB, $RUNS runs, $(nproc) CPUs, tako $(stat -c %s "$TAKO") bytes"
    echo
    echo "| command | wall (s) | fastest (s) | CPU (s) | peak RSS (MiB) | wall / openssl |"
    echo "|---|---:|---:|---:|---:|---:|"
    base=
    for n in 0 1 2; do
        f=$work/times/$n
        wall=$(cut -d ' ' -f 1 "$f" | sort -n | awk '{ v[NR] = $1 } END { printf "%.3f", v[int((NR + 1) / 2)] / 1e6 }')
        fastest=$(cut -d ' ' -f 1 "$f" | sort -n | awk 'NR == 1 { printf "%.3f", $1 / 1e6 }')
        cpu=$(awk '{ print $2 + $3 }' "$f" | sort -n | awk '{ v[NR] = $1 } END { printf "%.2f", v[int((NR + 1) / 2)] }')
        rss=$(awk '$4 > r { r = $4 } END { printf "%.1f", r / 1024 }' "$f")
        base=${base:-$wall}
        ratio=$(awk -v a="$wall" -v b="$base" 'BEGIN { printf "%.2f", a / b }')
        echo "| ${names[$n]} | $wall | $fastest | $cpu | $rss | $ratio |"
    done
} > "$results"
cat "$results"
