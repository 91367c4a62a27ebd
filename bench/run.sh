#!/usr/bin/env bash
# Benchmark tako against `openssl dgst -sha256` and stock tools on this machine.
#
#   bench/run.sh                        # a 1 GiB image, 5 runs of everything
#   SIZE_MIB=4096 RUNS=3 bench/run.sh   # another image size (MiB) or number of runs
#   TAKO=/path/to/tako bench/run.sh     # measure another tako binary (the server is still built)
#   SETTLE_S=10 bench/run.sh            # wait before each command that writes a copy (see README)
#
# Builds the release binary and the `serve` example, makes a random image of SIZE_MIB MiB,
# publishes it, serves it on 127.0.0.1 and times, RUNS times, round-robin (so that a slow
# moment of the machine hits every command alike):
#
#   openssl dgst -sha256 IMAGE          the reference: hashing the file as fast as OpenSSL can
#   curl -s URL | sha256sum             download and hash with stock tools
#   dd bs=1M conv=fsync                 copy the image and flush it to disk, no hashing: the
#                                       floor for anything that writes a copy
#   tako store                          publish the image into an empty server directory
#   tako fetch                          into an empty destination
#   tako fetch (nothing new)            re-checks (re-hashes) the stored image
#   tako fetch --no-verify              the same, but only checks the stored image's size
#
# and prints medians of wall and CPU time, the largest peak RSS seen, each figure's ratio to
# `openssl dgst`, and whether tako meets its targets. The page cache is warm (the image is
# read once before the first run), so reading is not disk-bound; `tako store`, `tako fetch`
# and `dd` still flush what they write to disk, as they must.
#
# Everything lives in bench/work/ (git-ignored). At the end all of it is removed but the
# results (bench/work/results-*.md); KEEP=1 keeps the image and directories. At most two
# copies of the image are on disk at a time. Missing tools (GNU time, curl, openssl) are
# installed with apt-get.
set -euo pipefail

SIZE_MIB=${SIZE_MIB:-1024}
RUNS=${RUNS:-5}
KEEP=${KEEP:-0}
SETTLE_S=${SETTLE_S:-0}

case $SETTLE_S in '' | *[!0-9]*) echo "SETTLE_S must be a whole number of seconds" >&2; exit 2 ;; esac

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"
require_positive SIZE_MIB RUNS
work=$root/bench/work
cd "$root"

# --- tools -------------------------------------------------------------------------------
missing=()
[ -x /usr/bin/time ] || missing+=(time)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
apt_install "${missing[@]}"
command -v cargo >/dev/null 2>&1 || { echo "cargo is needed: https://rustup.rs" >&2; exit 1; }

# --- build -------------------------------------------------------------------------------
echo "building the release binary and the serve example" >&2
cargo build --release --locked --quiet --bin tako --example serve
target_dir=$(cargo metadata --format-version 1 --no-deps 2>/dev/null |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
target_dir=${target_dir:-$root/target}
tako=${TAKO:-$target_dir/release/tako}
serve=$target_dir/release/examples/serve
[ -x "$tako" ] || { echo "no tako binary at $tako" >&2; exit 1; }

# --- work directory, server, clean-up ----------------------------------------------------
mkdir -p "$work"
image=$work/image-${SIZE_MIB}M.img
server_pid=
cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if [ "$KEEP" != 1 ]; then
        rm -rf "$work/srv" "$work/pub" "$work/dest" "$work/copy" "$work/times" \
            "$work/time.out" "$work/serve.out" "$work/serve.log" "$work/secret" \
            "$work/app.tako" "$image" "$image.part"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ ! -f "$image" ] || [ "$(stat -c %s "$image")" -ne $((SIZE_MIB * 1048576)) ]; then
    echo "making a random ${SIZE_MIB} MiB image" >&2
    head -c $((SIZE_MIB * 1048576)) /dev/urandom >"$image.part"
    mv "$image.part" "$image"
fi

"$tako" gen-key >"$work/keypair"
sed -n 2p "$work/keypair" >"$work/secret"
public=$(sed -n 5p "$work/keypair")
rm -f "$work/keypair"

rm -rf "$work/srv" "$work/pub" "$work/dest" "$work/copy" "$work/times"
mkdir -p "$work/srv/store" "$work/times"
# The served file is a hard link to the image (`tako store` keeps a store file that already
# has the right content), so serving costs no extra copy on disk.
digest=$(openssl dgst -sha256 -r "$image" | cut -d ' ' -f 1)
ln "$image" "$work/srv/store/$digest"
"$tako" store -f "$work/secret" -o "$work/srv" "$image" 1.0 >/dev/null

"$serve" "$work/srv" 127.0.0.1:0 >"$work/serve.out" 2>"$work/serve.log" &
server_pid=$!
url=
for _ in $(seq 100); do
    url=$(head -n 1 "$work/serve.out" 2>/dev/null || true)
    [ -n "$url" ] && break
    sleep 0.05
done
[ -n "$url" ] || { echo "the server did not start; see $work/serve.log" >&2; exit 1; }

cat >"$work/app.tako" <<EOF
Origin=$url
PublicKey=$public
Destination=$work/dest
Version=*
EOF

# --- measuring ---------------------------------------------------------------------------
# Wall time from the shell's clock (microseconds); CPU time (user + system of the command and
# all its children) and peak RSS (of the largest one) from GNU time. One line
# "wall_s cpu_s rss_kib" per run goes to $work/times/<name>.
measure() {
    local name=$1 t0 t1
    shift
    t0=$EPOCHREALTIME
    /usr/bin/time -f '%U %S %M' -o "$work/time.out" "$@" >/dev/null
    t1=$EPOCHREALTIME
    awk -v t0="$t0" -v t1="$t1" '{ printf "%.6f %.3f %d\n", t1 - t0, $1 + $2, $3 }' \
        "$work/time.out" >>"$work/times/$name"
}

# Before each command that writes a copy of the image: flush the disk, then remove the copy
# written last, untimed. So every writer starts with no dirty data around, and with as much
# memory just freed as it is about to fill (see "Page cache on a VM" in bench/README.md).
fresh_start() {
    sync
    rm -rf "$work/copy" "$work/pub" "$work/dest"
    [ "$SETTLE_S" -eq 0 ] || sleep "$SETTLE_S"
}

run_all() {
    measure openssl openssl dgst -sha256 "$image"
    # shellcheck disable=SC2016 # $1 is for the inner shell
    measure curl_sha256sum bash -c 'set -o pipefail; curl -sSf "$1" | sha256sum' _ "$url/store/$digest"
    fresh_start
    measure copy dd if="$image" of="$work/copy" bs=1M conv=fsync status=none
    fresh_start
    mkdir "$work/pub"
    measure store "$tako" store -f "$work/secret" -o "$work/pub" "$image" 1.0
    fresh_start
    mkdir "$work/dest"
    measure fetch "$tako" fetch "$work/app.tako"
    measure recheck "$tako" fetch "$work/app.tako"
    measure noverify "$tako" fetch --no-verify "$work/app.tako"
}

names=(openssl curl_sha256sum copy store fetch recheck noverify)
labels=("openssl dgst -sha256 FILE" "curl -s URL \\| sha256sum" "dd bs=1M conv=fsync (copy, no hash)"
    "tako store" "tako fetch (empty destination)" "tako fetch (nothing new)"
    "tako fetch --no-verify (nothing new)")
# Targets: the largest wall-time ratio to openssl (or, with "s", seconds), and peak RSS.
targets=("" "" "" "1.5" "1.3" "1.3" "0.020s")
max_rss_mib=16

# CPU time of the whole machine (all CPUs, clock ticks) and of the server, to tell how much
# else ran meanwhile: on a 2-CPU machine any other work skews every figure.
busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
server_ticks() { awk '{ print $14 + $15 }' "/proc/$server_pid/stat"; }

echo "warming the page cache" >&2
cat "$image" >/dev/null
echo "warm-up run" >&2
run_all
rm -f "$work/times/"*
busy0=$(busy_ticks) server0=$(server_ticks) start=$EPOCHREALTIME
for run in $(seq "$RUNS"); do
    echo "run $run of $RUNS" >&2
    run_all
done
busy1=$(busy_ticks) server1=$(server_ticks) end=$EPOCHREALTIME

# --- report ------------------------------------------------------------------------------
median() { # column, file
    sort -g -k "$1,$1" "$2" | awk -v c="$1" '{ v[NR] = $c } END {
        if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
maximum() { sort -g -k "$1,$1" "$2" | tail -n 1 | awk -v c="$1" '{ print $c }'; }

ref_wall=$(median 1 "$work/times/openssl")
ref_cpu=$(median 2 "$work/times/openssl")
libs=$(ldd "$tako" 2>/dev/null | awk '$1 !~ /linux-vdso|ld-linux/ { print $1 }' | tr '\n' ' ')
sha_ni=no
grep -qw sha_ni /proc/cpuinfo && sha_ni=yes
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)

results=$work/results-${SIZE_MIB}M.md
{
    echo "Image: ${SIZE_MIB} MiB of random bytes. ${RUNS} runs; wall and CPU: medians; fastest: the shortest wall time; peak RSS: the largest."
    echo "Warm page cache (SETTLE_S=$SETTLE_S); server: the \`serve\` example on 127.0.0.1."
    echo "Machine: ${cpu:-unknown CPU}, $(nproc) CPUs, SHA-NI: $sha_ni, Linux $(uname -r)."
    size=$(stat -c %s "$tako")
    verdict=MISSED
    [ "$size" -le $((4 * 1048576)) ] && verdict=met
    echo "tako: $size bytes ($(awk -v s="$size" 'BEGIN { printf "%.2f", s / 1048576 }') MiB; target <= 4 MiB: $verdict), linked to: ${libs:-nothing}"
    cat "$work/times/"* | awk -v b0="$busy0" -v b1="$busy1" -v s0="$server0" -v s1="$server1" \
        -v t0="$start" -v t1="$end" -v hz="$(getconf CLK_TCK)" '
        { measured += $2 }
        END {
            other = (b1 - b0) / hz - measured - (s1 - s0) / hz
            if (other < 0) other = 0
            printf "Other CPU use while measuring: %.1f s in %.0f s (%.2f CPUs on average, ", other, t1 - t0, other / (t1 - t0)
            printf "counting kernel writeback and this script); the server used %.1f s.\n", (s1 - s0) / hz
        }'
    echo
    echo "| command | wall (s) | fastest (s) | CPU (s) | peak RSS (MiB) | wall / openssl | CPU / openssl | target (wall / openssl, RSS) |"
    echo "|---|---:|---:|---:|---:|---:|---:|---|"
    for i in "${!names[@]}"; do
        f=$work/times/${names[$i]}
        awk -v l="${labels[$i]}" -v w="$(median 1 "$f")" -v c="$(median 2 "$f")" -v m="$(sort -g "$f" | head -n 1 | cut -d ' ' -f 1)" \
            -v r="$(maximum 3 "$f")" -v rw="$ref_wall" -v rc="$ref_cpu" -v t="${targets[$i]}" \
            -v mr="$max_rss_mib" 'BEGIN {
            verdict = ""
            if (t ~ /s$/) {
                limit = t + 0
                ok = w <= limit && r / 1024 <= mr
                verdict = sprintf("<= %d ms, <= %d MiB: %s", limit * 1000, mr, ok ? "met" : "MISSED")
            } else if (t != "") {
                ok = w / rw <= t + 0 && r / 1024 <= mr
                verdict = sprintf("<= %.1fx, <= %d MiB: %s", t, mr, ok ? "met" : "MISSED")
            }
            printf "| %s | %.3f | %.3f | %.2f | %.1f | %.2f | %.2f | %s |\n", l, w, m, c, r / 1024, w / rw,
                (rc > 0 ? c / rc : 0), verdict
        }'
    done
} | tee "$results"
echo
echo "(saved in ${results#"$root"/})"
