#!/usr/bin/env bash
# A poll when nothing changed: conditional (If-None-Match, answered 304) against one without
# validators (the whole manifest, 200), against a real nginx on 127.0.0.1.
#
#   bench/poll.sh                       # a manifest of 1000 entries, 50 polls of each kind
#   ENTRIES=5000 RUNS=100 bench/poll.sh # a larger manifest, more polls
#   TAKO=/path/to/tako bench/poll.sh    # another tako binary
#
# Publishes ENTRIES versions (of one small image) with the test key, serves the directory
# with nginx, fetches once, then times RUNS polls with hyperfine:
#
#   conditional     `tako fetch` as it runs: DEST/manifest.validators is sent, nginx says 304
#   no validators   the same, with DEST/manifest.validators removed before each poll (what
#                   a server without ETag/Last-Modified gets, and what tako did before)
#
# Bytes are what nginx logged per manifest request: $bytes_sent (status line, headers and
# body) and $body_bytes_sent. Wall time is hyperfine's mean and standard deviation. Needs
# nginx (nginx-light) and hyperfine; installs them with apt-get if missing. Everything lives
# in bench/work/poll (git-ignored); the results table is bench/work/poll-results.md.
set -euo pipefail

ENTRIES=${ENTRIES:-1000}
RUNS=${RUNS:-50}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"
require_positive ENTRIES RUNS
work=$root/bench/work/poll
cd "$root"

missing=()
[ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v hyperfine >/dev/null 2>&1 || missing+=(hyperfine)
apt_install "${missing[@]}"

if [ -z "${TAKO:-}" ]; then
    cargo build --release --quiet
    TAKO=$root/target/release/tako
fi

rm -rf "$work"
mkdir -p "$work/origin" "$work/dest" "$work/nginx"
key=$(tr -d '\n' < tests/vectors/test-key.secret)
printf 'a small image\n' > "$work/image"
echo "publishing $ENTRIES versions" >&2
for i in $(seq 1 "$ENTRIES"); do
    "$TAKO" store -k "$key" -o "$work/origin" "$work/image" "1.0.$i" >/dev/null
done
manifest_size=$(stat -c %s "$work/origin/manifest")

port=$(free_port)
{
    nginx_conf_start "$work/nginx"
    cat <<CONF
    log_format poll "\$request_uri \$status \$bytes_sent \$body_bytes_sent";
    access_log $work/nginx/access.log poll;
    server {
        listen 127.0.0.1:$port;
        root $work/origin;
    }
}
CONF
} > "$work/nginx/nginx.conf"
nginx_start "$work/nginx" "$port"
trap 'kill $nginx_pid 2>/dev/null || true' EXIT

cat > "$work/app.tako" <<CFG
Origin=http://127.0.0.1:$port
PublicKey=$(cat tests/vectors/test-key.public)
Destination=$work/dest
Version=*
CFG
"$TAKO" fetch "$work/app.tako" >/dev/null
[ -f "$work/dest/manifest.validators" ] || { echo "nginx sent no validators" >&2; exit 1; }

# Per-poll bytes: the manifest requests logged while one kind of poll ran.
bytes_of() {
    local from=$1
    tail -n +"$((from + 1))" "$work/nginx/access.log" | awk '$1 == "/manifest" {
        n++; status[$2]++; sent += $3; body += $4
    } END {
        s = ""; for (k in status) s = s k "x" status[k] " ";
        printf "%s|%.0f|%.0f\n", s, sent / n, body / n
    }'
}

lines() { wc -l < "$work/nginx/access.log"; }

start=$(lines)
hyperfine -N --warmup 3 --runs "$RUNS" --export-json "$work/conditional.json" \
    --command-name conditional "$TAKO fetch $work/app.tako" >&2
conditional_bytes=$(bytes_of "$start")

start=$(lines)
hyperfine -N --warmup 3 --runs "$RUNS" --export-json "$work/full.json" \
    --prepare "rm -f $work/dest/manifest.validators" \
    --command-name "no validators" "$TAKO fetch $work/app.tako" >&2
full_bytes=$(bytes_of "$start")

row() {
    local name=$1 json=$2 bytes=$3
    python3 - "$name" "$json" "$bytes" <<'PY'
import json, sys
name, path, bytes_ = sys.argv[1:]
r = json.load(open(path))["results"][0]
statuses, sent, body = bytes_.split("|")
print(f"| {name} | {statuses.strip()} | {sent} | {body} | {r['mean']*1000:.2f} | {r['stddev']*1000:.2f} | {r['median']*1000:.2f} |")
PY
}

{
    echo "manifest: $ENTRIES entries, $manifest_size bytes; $RUNS polls of each kind"
    echo
    echo "| poll | statuses | bytes sent per poll | body bytes per poll | wall mean (ms) | stddev (ms) | median (ms) |"
    echo "|---|---|---:|---:|---:|---:|---:|"
    row "conditional (304)" "$work/conditional.json" "$conditional_bytes"
    row "no validators (200)" "$work/full.json" "$full_bytes"
} | tee "$root/bench/work/poll-results.md"
