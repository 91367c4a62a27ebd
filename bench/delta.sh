#!/usr/bin/env bash
# Delta updates against real fetches over nginx on 127.0.0.1: tako, casync and zsync side by
# side, on the same versions of one image, with and without a rate limit.
#
#   bench/delta.sh                          # a 1 GiB image, unlimited and 20 MB/s
#   SIZE_MIB=128 bench/delta.sh             # a smaller image
#   LINKS=limited bench/delta.sh            # only the rate-limited link
#   TOOLS="tako" bench/delta.sh             # only tako (also: casync, zsync)
#   KEEP=1 bench/delta.sh                   # keep bench/work/delta for more runs by hand
#
# Makes a random image v0 and versions of it as issue 12 describes: 1 %, 5 % and 25 % of
# its 64 KiB blocks rewritten at random places, 1 KiB inserted at 5 random places (shifting
# all that follows) and an unrelated image. Publishes all of them with `tako store` (which
# writes the chunk indexes), `casync make` (a .caibx each, one chunk store) and `zsyncmake`
# (a .zsync each, pointing at the image in store/), in one directory served by nginx on two
# ports: one unlimited, one with `limit_rate 20m` (20 MiB/s per connection).
#
# A host holds v0 (as `tako fetch` installed it, with v0's chunk index cached in
# DEST/index/ as after any earlier delta update) and updates to each version with
#   tako     tako fetch
#   casync   casync extract --seed=<v0> --store=URL URL/<version>.caibx
#   zsync    zsync -i <v0> URL/<version>.zsync
# and, as the yardstick, a plain `tako fetch` into an empty destination ("tako (full)").
# One run each. Bytes are nginx's $bytes_sent (headers and bodies) for the requests logged
# during the run, connections the distinct $connection numbers among them; wall time and
# peak RSS are GNU time's. Each host starts as hard links to one copy of it (tako replaces
# files by renaming, never writes into them), so preparing a run costs no copy. Each result is checked against the
# version's SHA-256. Needs nginx (nginx-light), casync, zsync and GNU time: installs the
# missing ones with apt-get. Everything lives in bench/work/delta (git-ignored; about
# 5 GiB of disk for 1 GiB images), removed at the end; the table is also written to
# bench/work/delta-results.md.
set -euo pipefail

SIZE_MIB=${SIZE_MIB:-1024}
LINKS=${LINKS:-unlimited limited}
TOOLS=${TOOLS:-tako casync zsync}
RATE=${RATE:-20m}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=$root/bench/work/delta
cd "$root"
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"
require_positive SIZE_MIB

missing=()
[ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v casync >/dev/null 2>&1 || missing+=(casync)
command -v zsync >/dev/null 2>&1 || missing+=(zsync)
[ -x /usr/bin/time ] || missing+=(time)
apt_install "${missing[@]}"

TAKO=$(release_tako "$root")

rm -rf "$work"
mkdir -p "$work/origin/casync/store" "$work/origin/zsync" "$work/nginx"
nginx_pid=
cleanup() {
    [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null || true
    [ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
key=$(tr -d '\n' < tests/vectors/test-key.secret)
public=$(cat tests/vectors/test-key.public)
hex() { sha256sum "$1" | cut -d' ' -f1; }

# One version at a time, each made from v0 and then published, so that only v0 and the
# published copies take disk space.
make_version() { # NAME
    python3 - "$work" "$SIZE_MIB" "$1" <<'PY'
import random, sys, zlib
work, mib, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
size, block = mib << 20, 64 << 10
rng = random.Random(zlib.crc32(name.encode()))
out = f"{work}/{name}"
if name in ("v0", "unrelated"):
    with open(out, "wb") as f:
        for _ in range(mib):
            f.write(rng.randbytes(1 << 20))
    sys.exit()
data = bytearray(open(f"{work}/v0", "rb").read())
if name.startswith("rewrite-"):
    share = int(name.split("-")[1]) / 100
    blocks = size // block
    for b in rng.sample(range(blocks), max(1, round(blocks * share))):
        data[b * block:(b + 1) * block] = rng.randbytes(block)
elif name == "insert-5x1k":
    for p in sorted(rng.sample(range(size), 5), reverse=True):
        data[p:p] = rng.randbytes(1024)
open(out, "wb").write(data)
PY
}

versions=(rewrite-1 rewrite-5 rewrite-25 insert-5x1k unrelated)
declare -A digest number
echo "making and publishing the versions ($SIZE_MIB MiB each)" >&2
i=0
for name in v0 "${versions[@]}"; do
    make_version "$name"
    digest[$name]=$(hex "$work/$name")
    number[$name]=$i
    "$TAKO" store -k "$key" -o "$work/origin" "$work/$name" "$i" >/dev/null
    if [[ " $TOOLS " == *" casync "* ]]; then
        casync make --store="$work/origin/casync/store" "$work/origin/casync/$name.caibx" \
            "$work/$name" >/dev/null
    fi
    if [[ " $TOOLS " == *" zsync "* ]]; then
        zsyncmake -u "../store/${digest[$name]}" -o "$work/origin/zsync/$name.zsync" \
            "$work/$name" 2>/dev/null
    fi
    [ "$name" = v0 ] || rm -f "$work/$name"
    i=$((i + 1))
done
rm -f "$work/v0"
index_of_v0=$(stat -c %s "$work/origin/index/${digest[v0]}")

declare -A port
port[unlimited]=$(free_port)
port[limited]=$(free_port)
{
    nginx_conf_start "$work/nginx"
    cat <<CONF
    log_format delta "\$server_port \$status \$bytes_sent \$connection \$request_uri";
    access_log $work/nginx/access.log delta;
    keepalive_requests 100000;
    server {
        listen 127.0.0.1:${port[unlimited]};
        root $work/origin;
    }
    server {
        listen 127.0.0.1:${port[limited]};
        root $work/origin;
        limit_rate $RATE;
    }
}
CONF
} > "$work/nginx/nginx.conf"
nginx_start "$work/nginx" "${port[@]}"

config() { # DEST VERSION PORT
    printf 'Origin=http://127.0.0.1:%s\nPublicKey=%s\nDestination=%s\nVersion=%s\n' \
        "$3" "$public" "$1" "$2" > "$work/app.tako"
}

# The host before each update: v0 installed by tako fetch, its chunk index cached.
mkdir -p "$work/seed"
config "$work/seed" 0 "${port[unlimited]}"
"$TAKO" fetch "$work/app.tako" >/dev/null
mkdir -p "$work/seed/index"
cp "$work/origin/index/${digest[v0]}" "$work/seed/index/${digest[v0]}"
seed_image=$work/seed/store/${digest[v0]}

results=$work/rows
: > "$results"
# Runs one update and appends a table row: TOOL LINK NAME
run() {
    local tool=$1 link=$2 name=$3 p=${port[$2]} out start
    rm -rf "$work/run"
    case $tool in
        "tako (full)") mkdir -p "$work/run" ;;
        "tako (cold cache)") cp -al "$work/seed" "$work/run"; rm -f "$work/run/index/${digest[v0]}" ;;
        *) cp -al "$work/seed" "$work/run" ;;
    esac
    sync
    start=$(wc -l < "$work/nginx/access.log")
    case $tool in
        tako*)
            config "$work/run" "${number[$name]}" "$p"
            /usr/bin/time -f '%e %M' -o "$work/time" "$TAKO" fetch "$work/app.tako" > "$work/said"
            out=$work/run/latest
            ;;
        casync)
            /usr/bin/time -f '%e %M' -o "$work/time" casync extract --seed="$seed_image" \
                --store="http://127.0.0.1:$p/casync/store" \
                "http://127.0.0.1:$p/casync/$name.caibx" "$work/run/out" 2>/dev/null
            out=$work/run/out
            ;;
        zsync)
            (cd "$work/run" && /usr/bin/time -f '%e %M' -o "$work/time" zsync -q -i "$seed_image" \
                -o "$work/run/out" "http://127.0.0.1:$p/zsync/$name.zsync")
            out=$work/run/out
            ;;
    esac
    sleep 0.2 # nginx logs a request once it is done
    [ "$(hex "$out")" = "${digest[$name]}" ] || { echo "$tool $link $name: wrong result" >&2; exit 1; }
    read -r wall rss < "$work/time"
    tail -n +"$((start + 1))" "$work/nginx/access.log" | awk -v p="$p" -v tool="$tool" \
        -v link="$link" -v name="$name" -v size="$((SIZE_MIB << 20))" -v wall="$wall" -v rss="$rss" '
        $1 == p { n++; sent += $3; if (!($4 in seen)) { seen[$4] = 1; c++ } }
        END {
            printf "| %s | %s | %s | %.1f MiB | %.2f %% | %d | %d | %.2f | %.1f |\n",
                name, link, tool, sent / 1048576, 100 * sent / size, n, c, wall, rss / 1024
        }' | tee -a "$results" >&2
}

for link in $LINKS; do
    if [[ " $TOOLS " == *" tako "* ]]; then
        run "tako (full)" "$link" rewrite-5
    fi
    for name in "${versions[@]}"; do
        for tool in $TOOLS; do
            run "$tool" "$link" "$name"
        done
    done
    if [[ " $TOOLS " == *" tako "* ]]; then
        run "tako (full)" "$link" rewrite-25
        run "tako (full)" "$link" unrelated
        run "tako (cold cache)" "$link" rewrite-5
    fi
done

{
    echo "image: $SIZE_MIB MiB; limited link: limit_rate $RATE; v0's index: $index_of_v0 bytes"
    echo
    echo "| version | link | tool | bytes received | of the image | requests | connections | wall (s) | peak RSS (MiB) |"
    echo "|---|---|---|---:|---:|---:|---:|---:|---:|"
    cat "$results"
    # Issue 22's targets, from the rows above (bytes are the same on either link).
    echo
    awk -F '|' '
        function trim(s) { gsub(/^ +| +$/, "", s); return s }
        {
            name = trim($2); link = trim($3); tool = trim($4)
            pct = trim($6); sub(/ %/, "", pct)
            share[name, tool] = pct; wall[name, link, tool] = trim($9)
        }
        END {
            print "| target (issue 22) | figure | |"
            print "|---|---:|---|"
            split("rewrite-1 rewrite-5 rewrite-25", names, " ")
            for (i = 1; i <= 3; i++) {
                v = names[i]
                if (share[v, "tako"] != "" && share[v, "zsync"] > 0) {
                    r = share[v, "tako"] / share[v, "zsync"]
                    printf "| %s: tako bytes <= 1.3x zsync | %.2f | %s |\n", v, r, (r <= 1.3 ? "met" : "MISSED")
                }
            }
            if (share["insert-5x1k", "tako"] != "") {
                r = share["insert-5x1k", "tako"]
                printf "| insert-5x1k: <= 0.5 %% of the image | %.2f %% | %s |\n", r, (r <= 0.5 ? "met" : "MISSED")
            }
            d = wall["rewrite-25", "limited", "tako"]; f = wall["rewrite-25", "limited", "tako (full)"]
            if (d > 0 && f > 0)
                printf "| rewrite-25 over limit_rate: full / delta >= 3 | %.1f | %s |\n", f / d, (f / d >= 3 ? "met" : "MISSED")
        }' "$results"
} | tee "$root/bench/work/delta-results.md"
