#!/usr/bin/env bash
# How many bytes a delta update would download, and what indexing costs the publisher.
#
#   bench/delta.sh                  # a 1 GiB image
#   SIZE_MIB=256 bench/delta.sh     # a smaller one
#
# Makes a random image (v0) and versions of it as the issue describes: 1 %, 5 % and 25 % of
# its 64 KiB blocks rewritten at random places, 1 KiB inserted at 5 places (shifting all
# that follows), and an unrelated image. Publishes each with `tako store` (which writes the
# chunk index) and plans each version from v0's index with the `delta_plan` example: the
# bytes it would fetch, plus the index, against the image size. Also times `tako store`
# with and without --no-index and records its peak RSS (GNU time).
#
# `tako fetch` does not use indexes yet (see docs/index.md), so wall times of delta fetches,
# and casync/zsync side by side, are not measured here.
set -euo pipefail

SIZE_MIB=${SIZE_MIB:-1024}
case $SIZE_MIB in '' | *[!0-9]* | 0) echo "SIZE_MIB must be a positive whole number" >&2; exit 2 ;; esac

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=$root/bench/work/delta
cd "$root"

command -v cargo >/dev/null 2>&1 || { echo "cargo is needed: https://rustup.rs" >&2; exit 1; }
command -v python3 >/dev/null 2>&1 || { echo "python3 is needed to make the versions" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "GNU time is needed (apt-get install time)" >&2; exit 1; }
echo "building the release binary and the delta_plan example" >&2
cargo build --release --locked --quiet --bin tako --example delta_plan
target_dir=$(cargo metadata --format-version 1 --no-deps 2>/dev/null |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
target_dir=${target_dir:-$root/target}
tako=$target_dir/release/tako
plan=$target_dir/release/examples/delta_plan

rm -rf "$work"
mkdir -p "$work/out" "$work/out-noindex"
trap 'rm -rf "$work"' EXIT
key=$("$tako" gen-key | sed -n 's/^\(SECRET+.*\)$/\1/p')
printf '%s\n' "$key" >"$work/key"

echo "making the versions ($SIZE_MIB MiB each)" >&2
python3 - "$work" "$SIZE_MIB" <<'PY'
import os, random, sys
work, mib = sys.argv[1], int(sys.argv[2])
size = mib << 20
block = 64 << 10
rng = random.Random(12)
with open(f"{work}/v0", "wb") as f:
    for _ in range(mib):
        f.write(rng.randbytes(1 << 20))
def rewrite(name, share):
    data = bytearray(open(f"{work}/v0", "rb").read())
    blocks = size // block
    for b in rng.sample(range(blocks), max(1, round(blocks * share))):
        data[b * block:(b + 1) * block] = rng.randbytes(block)
    open(f"{work}/{name}", "wb").write(data)
for name, share in [("rewrite-1", 0.01), ("rewrite-5", 0.05), ("rewrite-25", 0.25)]:
    rewrite(name, share)
data = open(f"{work}/v0", "rb").read()
places = sorted(rng.sample(range(size), 5))
out, last = [], 0
for p in places:
    out += [data[last:p], rng.randbytes(1024)]
    last = p
out.append(data[last:])
open(f"{work}/insert-5x1k", "wb").write(b"".join(out))
with open(f"{work}/unrelated", "wb") as f:
    for _ in range(mib):
        f.write(rng.randbytes(1 << 20))
PY

store() { # OUT IMAGE VERSION [FLAGS...]
    local out=$1 image=$2 version=$3
    shift 3
    /usr/bin/time -f '%e %M' -o "$work/time" \
        "$tako" store -f "$work/key" -o "$out" "$@" "$image" "$version" >/dev/null
    cat "$work/time"
}

echo "publishing" >&2
read -r t_idx rss_idx < <(store "$work/out" "$work/v0" 0)
read -r t_no rss_no < <(store "$work/out-noindex" "$work/v0" 0 --no-index)
i=1
for v in rewrite-1 rewrite-5 rewrite-25 insert-5x1k unrelated; do
    store "$work/out" "$work/$v" "$i" >/dev/null
    i=$((i + 1))
done
hex() { sha256sum "$1" | cut -d' ' -f1; }
old_index=$work/out/index/$(hex "$work/v0")

echo
echo "### Delta from v0, $SIZE_MIB MiB image"
echo
echo "| version | bytes to fetch (index included) | share of the image | range requests | reused |"
echo "|---|---:|---:|---:|---:|"
for v in rewrite-1 rewrite-5 rewrite-25 insert-5x1k unrelated; do
    read -r size index_bytes fetch reused requests < <("$plan" "$work/out/index/$(hex "$work/$v")" "$old_index")
    total=$((fetch + index_bytes))
    awk -v v="$v" -v t="$total" -v s="$size" -v r="$requests" -v u="$reused" 'BEGIN {
        printf "| %s | %.1f MiB | %.2f %% | %d | %.1f MiB |\n", v, t / 1048576, 100 * t / s, r, u / 1048576 }'
done
echo
echo "### tako store of v0"
echo
echo "| command | wall (s) | peak RSS (MiB) |"
echo "|---|---:|---:|"
awk -v t="$t_idx" -v r="$rss_idx" 'BEGIN { printf "| tako store (with index) | %.2f | %.1f |\n", t, r / 1024 }'
awk -v t="$t_no" -v r="$rss_no" 'BEGIN { printf "| tako store --no-index | %.2f | %.1f |\n", t, r / 1024 }'
