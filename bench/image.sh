#!/usr/bin/env bash
# `tako image pull` of a real Debian tree from a local docker-registry, side by side with
# `skopeo copy` + `umoci raw unpack` and with `gzip -dc | tar -x` of the same layer.
#
#   bench/image.sh                  # 5 runs
#   RUNS=9 bench/image.sh           # more runs
#   SUITE=trixie bench/image.sh     # another Debian release for the tree
#   KEEP=1 bench/image.sh           # keep bench/work/image (the tree and images) for the next run
#   RUN_DIR=/dev/shm/x bench/image.sh   # the trees and the cache on another file system (tmpfs)
#
# The image: `debootstrap --variant=minbase` of Debian (bookworm by default) from the
# mirror apt already uses (the first `URIs:`/`deb` line of /etc/apt/sources.list*), about
# 175 MB in 6.7k entries, kept as a tarball in bench/work/image/ so later runs (with KEEP=1)
# skip it. It is packed into one layer twice: with umoci (gzip, as `umoci repack` writes
# it) and, from that, with `skopeo copy --dest-compress-format zstd` (zstd); both are pushed
# to a docker-registry on 127.0.0.1 (plain HTTP).
#
# What runs, in turn in each round (so a slow moment of the machine hits all alike), after
# one warm-up round that is not counted; every tree is removed, untimed, before the next:
#   tako gzip (cold)       tako image pull oci+http://…:gzip into a new DIR with an empty cache
#   tako zstd (cold)       the same for the zstd image
#   tako (new DIR, cached) the gzip image into a new DIR, every blob in the cache
#   tako (up to date)      the gzip image again into the DIR that holds it
#   skopeo + umoci         skopeo copy docker://…:gzip oci:DIR, then umoci raw unpack
#   gzip -dc | tar -x      the gzip layer blob, read from a file, into a new directory: the
#                          floor (no download, no digest, no fsync)
# tako flushes the new tree to disk (syncfs) before it moves it into place; the others do
# not, so they are given a `sync` inside their timed command to compare like with like.
#
# Wall time from the shell's clock; CPU time (user + system, children included) and peak
# RSS (of the largest process) from GNU time. Needs root (umoci repack and unpack keep
# owners), debootstrap, docker-registry, skopeo, umoci, GNU time and curl: installs the
# missing ones with apt-get. Everything lives in bench/work/image (git-ignored, about
# 1.5 GiB); the table is also written to bench/work/image-results.md.
set -euo pipefail

RUNS=${RUNS:-5}
SUITE=${SUITE:-bookworm}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=$root/bench/work/image
cd "$root"
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"
require_positive RUNS
[ "$(id -u)" -eq 0 ] || { echo "bench/image.sh needs root: umoci and tako keep the image's owners" >&2; exit 2; }

missing=()
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
[ -x /usr/bin/docker-registry ] || missing+=(docker-registry)
command -v skopeo >/dev/null 2>&1 || missing+=(skopeo)
command -v umoci >/dev/null 2>&1 || missing+=(umoci)
command -v curl >/dev/null 2>&1 || missing+=(curl)
[ -x /usr/bin/time ] || missing+=(time)
apt_install "${missing[@]}"

TAKO=$(release_tako "$root")

mkdir -p "$work"
registry_pids=()
cleanup() {
    [ ${#registry_pids[@]} -eq 0 ] || kill "${registry_pids[@]}" 2>/dev/null || true
    rm -rf "${RUN_DIR:-$work/run}" "$work/registry"
    [ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

# --- the tree and its two images -----------------------------------------------------------
# The mirror apt uses: deb822 `URIs:` lines, then one-line `deb` entries.
mirror=$( (cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true) |
    awk '/^URIs:/ { print $2 } /^deb / { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; break } }' |
    grep -v security | head -n 1 || true)
rootfs_tar=$work/rootfs-$SUITE.tar
if [ ! -s "$rootfs_tar" ]; then
    echo "debootstrap --variant=minbase $SUITE from ${mirror:-the default mirror} (a few minutes)" >&2
    rm -rf "$work/debootstrap"
    debootstrap --variant=minbase "$SUITE" "$work/debootstrap" ${mirror:+"$mirror"} >"$work/debootstrap.log" 2>&1 ||
        { echo "debootstrap failed; see $work/debootstrap.log" >&2; exit 1; }
    # apt's downloaded packages are no part of an image.
    rm -rf "$work/debootstrap/var/cache/apt/archives/"*.deb
    tar --numeric-owner --xattrs -C "$work/debootstrap" -cf "$rootfs_tar.new" .
    mv "$rootfs_tar.new" "$rootfs_tar"
    rm -rf "$work/debootstrap"
fi

layout=$work/oci
if [ ! -d "$layout" ]; then
    echo "packing the tree with umoci (gzip) and skopeo (zstd)" >&2
    rm -rf "$work/bundle" "$layout.new"
    umoci init --layout "$layout.new"
    umoci new --image "$layout.new:gzip"
    umoci unpack --image "$layout.new:gzip" "$work/bundle" >/dev/null
    tar --numeric-owner --xattrs -C "$work/bundle/rootfs" -xf "$rootfs_tar"
    umoci repack --image "$layout.new:gzip" "$work/bundle"
    umoci gc --layout "$layout.new"
    rm -rf "$work/bundle"
    mv "$layout.new" "$layout"
fi

# Two registries, plain HTTP on free ports, their storage in the work directory: one for
# the gzip image, one for the zstd image. In one registry, skopeo 1.9 would mount the gzip
# layer it already pushed there instead of uploading a zstd one.
start_registry() { # NAME; prints its pid and port
    local dir=$work/registry/$1 port
    port=$(free_port)
    mkdir -p "$dir/storage"
    cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/storage
http:
  addr: 127.0.0.1:$port
EOF
    /usr/bin/docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
    echo "$! $port"
}
read -r pid gzip_port < <(start_registry gzip)
registry_pids+=("$pid")
read -r pid zstd_port < <(start_registry zstd)
registry_pids+=("$pid")
for port in "$gzip_port" "$zstd_port"; do
    for _ in $(seq 100); do
        curl -sf "http://127.0.0.1:$port/v2/" >/dev/null && break
        sleep 0.1
    done
    curl -sf "http://127.0.0.1:$port/v2/" >/dev/null ||
        { echo "docker-registry did not start on port $port; see $work/registry/*/log" >&2; exit 1; }
done
skopeo copy -q --dest-tls-verify=false "oci:$layout:gzip" "docker://127.0.0.1:$gzip_port/debian:gzip"
skopeo copy -q --dest-tls-verify=false --dest-compress --dest-compress-format zstd \
    "oci:$layout:gzip" "docker://127.0.0.1:$zstd_port/debian:zstd"

# The gzip layer as a file, for the floor.
manifest_hex=$(sed -n 's/.*"digest":"sha256:\([0-9a-f]*\)".*/\1/p' "$layout/index.json" | head -n 1)
layer_hex=$(tr ',' '\n' <"$layout/blobs/sha256/$manifest_hex" | sed -n 's/.*"digest":"sha256:\([0-9a-f]*\)".*/\1/p' | tail -n 1)
layer=$layout/blobs/sha256/$layer_hex
zstd_size=$(curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "http://127.0.0.1:$zstd_port/v2/debian/manifests/zstd" | tr '{' '\n' | grep 'tar+zstd' |
    sed -n 's/.*"size":\([0-9]*\).*/\1/p' | head -n 1)
entries=$(tar -tf "$rootfs_tar" | wc -l)
unpacked=$(tar -tvf "$rootfs_tar" | awk '{ s += $3 } END { print s }')

# --- measuring -----------------------------------------------------------------------------
run=${RUN_DIR:-$work/run}
mkdir -p "$run/times"
gzip_image=oci+http://127.0.0.1:$gzip_port/debian:gzip
zstd_image=oci+http://127.0.0.1:$zstd_port/debian:zstd
# One line "wall_s cpu_s rss_kib" per run goes to $run/times/<name>.
measure() {
    local name=$1 t0 t1
    shift
    sync
    t0=$EPOCHREALTIME
    /usr/bin/time -f '%U %S %M' -o "$run/time.out" "$@" >"$run/$name.out" 2>&1 ||
        { echo "$name failed:" >&2; cat "$run/$name.out" >&2; exit 1; }
    t1=$EPOCHREALTIME
    awk -v t0="$t0" -v t1="$t1" '{ printf "%.6f %.3f %d\n", t1 - t0, $1 + $2, $3 }' \
        "$run/time.out" >>"$run/times/$name"
}

clean() { rm -rf "$run/cache" "$run/t" "$run/skopeo" "$run/umoci" "$run/floor"; mkdir -p "$run/t"; }

run_all() {
    clean
    measure tako_gzip "$TAKO" image pull -q --cache "$run/cache" "$gzip_image" "$run/t/gzip"
    measure tako_uptodate "$TAKO" image pull -q --cache "$run/cache" "$gzip_image" "$run/t/gzip"
    measure tako_cached "$TAKO" image pull -q --cache "$run/cache" "$gzip_image" "$run/t/again"
    clean
    measure tako_zstd "$TAKO" image pull -q --cache "$run/cache" "$zstd_image" "$run/t/zstd"
    clean
    # shellcheck disable=SC2016 # $1… are for the inner shell
    measure skopeo_umoci sh -c 'skopeo copy -q --src-tls-verify=false "docker://$1" "oci:$2:x" &&
        umoci raw unpack --image "$2:x" "$3" && sync' _ "127.0.0.1:$gzip_port/debian:gzip" "$run/skopeo" "$run/umoci"
    clean
    mkdir "$run/floor"
    # shellcheck disable=SC2016
    measure floor sh -c 'gzip -dc "$1" | tar --numeric-owner -xpf - -C "$2" && sync' _ "$layer" "$run/floor"
    clean
}

echo "warm-up round" >&2
run_all
rm -f "$run/times/"*
for round in $(seq "$RUNS"); do
    echo "round $round of $RUNS" >&2
    run_all
done

# --- report --------------------------------------------------------------------------------
median() { # column, file
    sort -g -k "$1,$1" "$2" | awk -v c="$1" '{ v[NR] = $c } END {
        if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
maximum() { sort -g -k "$1,$1" "$2" | tail -n 1 | awk -v c="$1" '{ print $c }'; }
wall() { median 1 "$run/times/$1"; }
ratio() { awk -v a="$(wall "$1")" -v b="$(wall "$2")" -v t="$3" 'BEGIN {
    printf "%.2f (target <= %s: %s)", a / b, t, (a / b <= t ? "met" : "MISSED") }'; }

names=(tako_gzip tako_zstd tako_cached tako_uptodate skopeo_umoci floor)
labels=("tako image pull, gzip (cold: empty cache, new DIR)" "tako image pull, zstd (cold)"
    "tako image pull, gzip, every blob cached, new DIR" "tako image pull, gzip, DIR holds it (up to date)"
    "skopeo copy + umoci raw unpack (gzip)" "gzip -dc LAYER \\| tar -x (floor)")
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
results=$root/bench/work/image-results.md
{
    echo "Image: Debian $SUITE minbase, one layer: $(stat -c %s "$layer") bytes gzip, ${zstd_size:-?} bytes zstd; $unpacked bytes in $entries entries."
    echo "$RUNS rounds after a warm-up; wall and CPU: medians; fastest: the shortest wall time; peak RSS: the largest."
    echo "Trees and cache on $(df --output=fstype "$run" | tail -n 1) ($run)."
    echo "Machine: ${cpu:-unknown CPU}, $(nproc) CPUs, Linux $(uname -r); $(skopeo --version), $(umoci --version)."
    echo "tako: $(stat -c %s "$TAKO") bytes"
    echo
    echo "| command | wall (s) | fastest (s) | CPU (s) | peak RSS (MiB) |"
    echo "|---|---:|---:|---:|---:|"
    for i in "${!names[@]}"; do
        f=$run/times/${names[$i]}
        awk -v l="${labels[$i]}" -v w="$(median 1 "$f")" -v c="$(median 2 "$f")" \
            -v m="$(sort -g "$f" | head -n 1 | cut -d ' ' -f 1)" -v r="$(maximum 3 "$f")" \
            'BEGIN { printf "| %s | %.3f | %.3f | %.2f | %.1f |\n", l, w, m, c, r / 1024 }'
    done
    echo
    echo "- tako gzip / (skopeo + umoci): $(ratio tako_gzip skopeo_umoci 0.5)"
    echo "- tako gzip / floor: $(ratio tako_gzip floor 1.2)"
    echo "- tako zstd / tako gzip: $(ratio tako_zstd tako_gzip 0.7)"
    echo "- tako up to date / tako gzip cold: $(ratio tako_uptodate tako_gzip 0.3)"
    awk -v a="$(wall tako_cached)" -v b="$(wall tako_gzip)" 'BEGIN {
        printf "- tako every blob cached, new DIR / tako gzip cold: %.2f (no target: it unpacks all the same)\n", a / b }'
    rss=$(for n in tako_gzip tako_zstd tako_cached tako_uptodate; do maximum 3 "$run/times/$n"; done | sort -g | tail -n 1)
    awk -v r="$rss" 'BEGIN { printf "- tako peak RSS: %.1f MiB (target <= 64 MiB: %s)\n", r / 1024, (r / 1024 <= 64 ? "met" : "MISSED") }'
} | tee "$results"
echo
echo "(saved in ${results#"$root"/})"
